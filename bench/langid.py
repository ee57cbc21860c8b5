"""Language ID with and without `--expect`: how often Whisper names the clip's language, on each engine.

For every clip of an eval manifest (`bin/make-devset DIR --real-kk` for the real Kazakh clips), the
voiced audio goes through the same detection the pipeline runs (`Engine.language_totals`: Whisper's
language probabilities averaged over the VAD's voiced windows), once per engine; the pick is then
made unrestricted (as before `--expect`) and among each expected set (`asr.langid.pick`). One
encoder pass per 30 s window per engine, no decoding: minutes for the 31 real clips, so both
engines can be compared on the same probabilities `testimony eval` would see.

    .venv/bin/python bench/langid.py MANIFEST [--asr-model base] [--expect kk,ru,en --expect kk,en]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stage_times import machine_info  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results-langid.md"


def voiced(clips) -> list:
    """(clip, audio, regions) for each clip: extracted and VAD-split once, shared by both engines."""
    from pipeline.stages.media import extract_audio, load_wav, probe
    from pipeline.stages.vad import speech_regions

    out = []
    with tempfile.TemporaryDirectory(prefix="bench-langid-") as tmp:
        for n, clip in enumerate(clips):
            audio = load_wav(extract_audio(probe(clip.audio), Path(tmp) / f"{n}.wav").wav_path)
            out.append((clip, audio, speech_regions(audio)))
    return out


def totals_for(engine_name: str, model_name: str, prepared: list) -> list[dict[str, float]]:
    """Each clip's averaged language probabilities from `engine_name`."""
    from pipeline.asr.engine import engine_for

    engine = engine_for(engine_name)
    model, _ = engine.load(model_name, engine.device(None))
    return [engine.language_totals(model, audio, regions) for _, audio, regions in prepared]


def score(prepared: list, totals: list[dict[str, float]], expected) -> tuple[int, Counter]:
    """(right, what was picked) over the clips, for one expected set (None: unrestricted)."""
    from pipeline.asr.langid import pick

    picks = [pick(t, expected)[0] for t in totals]
    return sum(p == clip.language for p, (clip, _, _) in zip(picks, prepared)), Counter(map(str, picks))


def report(args, prepared, results) -> str:
    """The Markdown table: one row per engine and choice, then the rank of the true language."""
    lines = ["# Language ID among the expected languages (`--expect`)", "",
             f"Command: `.venv/bin/python bench/langid.py {' '.join(sys.argv[1:])}`", "",
             f"{len(prepared)} clips from `{args.manifest}`; model `{args.asr_model}`.", "",
             *(f"- {k}: {v}" for k, v in machine_info("cpu").items()), "",
             "| engine | choice | right | picked |", "|---|---|---|---|"]
    for engine, (totals, rows) in results.items():
        for label, (right, picked) in rows:
            shown = ", ".join(f"{code} ×{n}" for code, n in picked.most_common())
            lines.append(f"| {engine} | {label} | {right}/{len(prepared)} | {shown} |")
    lines += ["", "Rank of the clip's own language among all of Whisper's (1 = first):", ""]
    for engine, (totals, _) in results.items():
        ranks = [sorted(t, key=t.get, reverse=True).index(clip.language) + 1 if clip.language in t else None
                 for t, (clip, _, _) in zip(totals, prepared)]
        lines.append(f"- {engine}: {dict(sorted(Counter(ranks).items(), key=lambda kv: kv[0] or 0))}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--asr-model", default="base")
    parser.add_argument("--engines", default="whisper,faster-whisper")
    parser.add_argument("--expect", action="append", help="an expected set, e.g. kk,ru,en (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here too")
    args = parser.parse_args(argv)
    from pipeline.evaluation.evaluate import load_manifest
    from pipeline.run.options import expected_languages

    sets = [(label, expected_languages(label)) for label in (args.expect or ["kk,ru,en"])]
    prepared = voiced(load_manifest(args.manifest))
    results = {}
    for engine in args.engines.split(","):
        totals = totals_for(engine, args.asr_model, prepared)
        rows = [("any (no --expect)", score(prepared, totals, None))]
        rows += [(f"--expect {label}", score(prepared, totals, codes)) for label, codes in sets]
        results[engine] = (totals, rows)
    text = report(args, prepared, results)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
