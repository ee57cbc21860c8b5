"""Throughput of the pipeline on each ASR engine, against plain whisper and plain faster-whisper.

    .venv/bin/python bench/throughput.py            # the benchmark (several minutes on 2 cores)
    .venv/bin/python bench/throughput.py --quick    # smoke run: 20 s audio, 2 files

On one audio set and one model (default: Whisper base from the store) it measures, each in a fresh
process (bench/throughput_work.py): our pipeline's stages (extract, language detection,
transcription, translation, rendering) on both engines, the plain `whisper` CLI and plain
faster-whisper, WER of each on real English LibriVox speech, and N one-minute files in one
`run_many` against N one-file runs. Model loads are reported apart. Markdown goes to
bench/results-throughput.md (a --quick run writes to a temporary file unless --out is given).

The default set is built at run time from Debian pocketsphinx-testdata's LibriVox clips: a quiet
start, clips separated by 2-5 s pauses, a quiet end, as H.264 + AAC 48 kHz stereo mp4 files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]
from pipeline.asr.core import ENGINES  # noqa: E402  (after the path above)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
DEFAULT_OUT = REPO / "bench" / "results-throughput.md"
LEAD, TAIL = 3.0, 1.0
PAUSES = (2.0, 3.5, 5.0, 2.5, 4.0, 3.0)


# ---------------------------------------------------------------------------------------------- audio


def librivox() -> tuple[list[Path], dict[str, str]]:
    if not LIBRIVOX.is_dir():
        raise SystemExit("Debian pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata), "
                         "or pass your own files with --files")
    from pipeline.evaluation.devset import librivox as listed

    clips = sorted(listed(), key=lambda clip: clip[1])
    return [wav for _, wav, _ in clips], {wav.stem: text for _, wav, text in clips}


def interview(out: Path, seconds: float, variant: int) -> tuple[Path, str]:
    """An interview-like mp4 of `seconds`: quiet start, LibriVox clips with pauses (order rotated
    per variant, so every file differs), quiet end. Returns the file and its reference text."""
    from tests import media_factory as mf

    clips, refs = librivox()
    pcm, used, length = [], [], 0.0
    budget = seconds - LEAD - TAIL
    for n in range(4 * len(clips)):
        clip = clips[(variant + n) % len(clips)]
        with wave.open(str(clip), "rb") as w:
            frames, rate, clip_s = w.readframes(w.getnframes()), w.getframerate(), w.getnframes() / w.getframerate()
        if rate != 16000 or not clip_s:
            continue
        pause = PAUSES[(variant + len(used)) % len(PAUSES)] if used else 0.0
        if length + pause + clip_s > budget:
            if budget - length < 3.0:
                break
            continue  # too long for what is left: try a shorter clip
        pcm += [b"\0" * (int(pause * rate) * 2), frames]
        used.append(clip.stem)
        length += pause + clip_s
    speech = out.with_suffix(".wav")
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)  # the LibriVox clips' rate
        w.writeframes(b"".join(pcm))
    lead = LEAD + 0.1 * (variant // len(clips))  # beyond one rotation of the clips, still distinct files
    video = mf.video_from_audio(speech, out, lead_silence=lead, tail_silence=seconds - lead - length,
                                rate=48000, channels=2)
    speech.unlink()
    return video, " ".join(refs[u] for u in used)


# ------------------------------------------------------------------------------------------ measuring


def measure(kind: str, spec: dict, workdir: Path, label: str) -> dict:
    """Run one worker process; adds its outer wall time (Python start included) as `process_s`."""
    spec_path = workdir / f"spec-{time.monotonic_ns()}.json"
    result_path = spec_path.with_name(spec_path.name.replace("spec-", "result-"))
    spec_path.write_text(json.dumps(spec))
    print(f"  {label} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "bench" / "throughput_work.py"), kind, str(spec_path),
                    str(result_path)], check=True, cwd=REPO)
    result = json.loads(result_path.read_text())
    result["process_s"] = time.perf_counter() - start
    return result


def wer(hypothesis: str, reference: str | None) -> float | None:
    if reference is None:
        return None
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    return jiwer.wer(normalize(reference), normalize(hypothesis))


def run_all(args: argparse.Namespace, workdir: Path) -> dict:
    if args.files:
        files, refs = [str(Path(f).resolve()) for f in args.files], [None] * len(args.files)
        batch_files = files
    else:
        print(f"building {args.n_files} interview files of {args.seconds:.0f} s ...", file=sys.stderr)
        made = [interview(workdir / f"interview-{i:02d}.mp4", args.seconds, i) for i in range(args.n_files)]
        files, refs = [str(made[0][0])], [made[0][1]]
        batch_files = [str(v) for v, _ in made]
    base = {"model": args.asr_model, "device": args.device}
    r: dict = {"files": files, "refs": refs, "batch_files": batch_files}
    r["setup"] = setup = measure("setup", base, workdir, "model store: checkpoint and CTranslate2 folder")
    for engine in args.engines:
        r[f"ours:{engine}"] = measure("stages", {**base, "engine": engine, "files": files}, workdir,
                                      f"our pipeline, {engine} engine, stage by stage")
    out_dir = workdir / "whisper-cli"
    command = [str(Path(sys.executable).with_name("whisper")), *files, "--model", setup["pt"], "--language",
               args.language, "--output_dir", str(out_dir), "--output_format", "txt"]
    if args.device:
        command += ["--device", args.device]
    r["plain-whisper"] = measure("cli", {"command": command}, workdir, "plain whisper CLI")
    r["plain-whisper"]["command"] = command
    r["plain-whisper"]["texts"] = [(out_dir / (Path(f).stem + ".txt")).read_text() for f in files]
    r["plain-whisper-load"] = measure("plain-whisper-load", {**base, "pt": setup["pt"]}, workdir,
                                      "plain whisper: import + model load")
    r["plain-fw"] = measure("plain-fw", {**base, "ct2": setup["ct2"], "files": files, "language": args.language},
                            workdir, "plain faster-whisper")
    for engine in args.batch_engines:
        spec = {**base, "engine": engine}
        r[f"batch:{engine}"] = measure("batch", {**spec, "files": batch_files}, workdir,
                                       f"{len(batch_files)} files in one run ({engine})")
        r[f"singles:{engine}"] = [measure("single", {**spec, "files": [f]}, workdir,
                                          f"one-file run {i + 1}/{len(batch_files)} ({engine})")
                                  for i, f in enumerate(batch_files)]
    return r


# ------------------------------------------------------------------------------------------- report

STAGES = [("extract", "extract (hash + probe + ffmpeg)"), ("language", "language detection (voiced windows)"),
          ("transcription", "transcription (VAD + decode)"), ("translation", "translation"),
          ("rendering", "rendering (transcript + bundle)")]


def _sum(runs: list[dict], key: str) -> float:
    return sum(f["stages"][key] for f in runs)


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def report(r: dict, args: argparse.Namespace, machine: dict, command: str) -> str:
    audio = sum(f["audio_s"] for f in r[f"ours:{args.engines[0]}"]["files"])
    lines = ["# Throughput", "", f"Measured by `bench/throughput.py` on {machine['date']}"
             + (" — **quick smoke run, not the benchmark**" if args.quick else "") + ". Re-run with:", "",
             "```", command, "```", "",
             f"Audio: {len(r['files'])} file(s), {audio:.1f} s; model `{args.asr_model}`. RTF = seconds / audio "
             "seconds (lower is faster). Every row ran in its own fresh process; model loads are apart.", ""]
    ours = {e: r[f"ours:{e}"] for e in args.engines}
    whole = {e: sum(_sum(o["files"], k) for k, _ in STAGES) for e, o in ours.items()}
    lines += ["## Our pipeline, stage by stage", "",
              "| stage | " + " | ".join(f"{e} s | {e} RTF" for e in ours) + " |",
              "| --- | " + " | ".join("---: | ---:" for _ in ours) + " |"]
    for key, name in [("vad", "(VAD alone; inside transcription)"), *STAGES]:
        cells = [f"{_sum(o['files'], key):.2f} | {_sum(o['files'], key) / audio:.3f}" for o in ours.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **whole pipeline** | " + " | ".join(f"**{whole[e]:.2f}** | **{whole[e] / audio:.3f}**"
                                                       for e in ours) + " |")
    lines.append("| model load (once per process) | " + " | ".join(f"{o['load_s']:.2f} | -" for o in ours.values())
                 + " |")
    lines.append("| peak RSS MiB | " + " | ".join(f"{o['rss_mib']:.0f} | -" for o in ours.values()) + " |")
    lines += ["", "Translation is English → nothing to translate here; Kazakh and Uyghur need an Argos "
              "package (none is installable offline). Engines: "
              + "; ".join(f"{e}: {o['engine'].get('engine')} {o['engine'].get('engine_version')} on {o['device']}"
                          + (f", {o['engine']['compute_type']}" if "compute_type" in o["engine"] else "")
                          for e, o in ours.items()), ""]

    pw, pwl, pf = r["plain-whisper"], r["plain-whisper-load"], r["plain-fw"]
    pw_work = pw["wall_s"] - pwl["load_s"]
    pf_work = sum(f["seconds"] for f in pf["files"])
    rows = [("plain `whisper` CLI (beam 5, fallback to 1.0, no VAD)", pw["wall_s"], pwl["load_s"], pw_work,
             pw["child_rss_mib"]),
            (f"plain faster-whisper ({pf['compute_type']}, beam 5, no VAD)", pf["process_s"],
             pf["import_s"] + pf["load_s"], pf_work, pf["rss_mib"])]
    rows += [(f"ours, {e} engine (greedy, VAD, word times)", o["process_s"], o["import_s"] + o["load_s"], whole[e],
              o["rss_mib"]) for e, o in ours.items()]
    lines += ["## Against the plain tools (same audio, same model)", "",
              "| run | process wall s | start + load s | processing s | RTF | peak RSS MiB |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {w:.2f} | {load:.2f} | {p:.2f} | {p / audio:.3f} | {m:.0f} |" for n, w, load, p, m in rows]
    lines += ["", f"Plain whisper: `{' '.join(shlex.quote(c) for c in pw['command'][:1])} FILE --model base.pt "
              f"--language {args.language}` (the store's base.pt: `--model base --model_dir` would re-download "
              "it, as its checksum differs from OpenAI's file). Its start + load comes from a separate process "
              "that imports whisper and loads the model.", ""]
    ratios = []
    if "whisper" in whole:
        ratios.append(("ours (whisper) / plain whisper", whole["whisper"] / pw_work, "≤ 1.10",
                       whole["whisper"] / pw_work <= 1.10))
    if "faster-whisper" in whole:
        ratios.append(("plain whisper / ours (faster-whisper + VAD)", pw_work / whole["faster-whisper"], "≥ 3",
                       pw_work / whole["faster-whisper"] >= 3))
        ratios.append(("plain faster-whisper / ours (faster-whisper + VAD)", pf_work / whole["faster-whisper"],
                       "-", None))
    lines += ["| ratio of processing times | value | target | met |", "| --- | ---: | --- | --- |"]
    lines += [f"| {n} | {v:.2f} | {t} | {'-' if ok is None else ('yes' if ok else 'NO')} |" for n, v, t, ok in ratios]

    refs = r["refs"]
    if any(refs):
        reference = " ".join(x for x in refs if x)
        wers = {f"ours, {e}": wer(" ".join(f["text"] for f in o["files"]), reference) for e, o in ours.items()}
        wers["plain whisper"] = wer(" ".join(pw["texts"]), reference)
        wers["plain faster-whisper"] = wer(" ".join(f["text"] for f in pf["files"]), reference)
        texts = {f"ours, {e}": o["files"][0]["text"] for e, o in ours.items()}
        texts.update({"plain whisper": pw["texts"][0].replace("\n", " "),
                      "plain faster-whisper": pf["files"][0]["text"]})
        lines += ["", "## Accuracy on the LibriVox speech", "", "| run | WER | first file's text (start) |",
                  "| --- | ---: | --- |"]
        lines += [f"| {n} | {w:.2%} | {' '.join(texts[n].split())[:160]} ... |" for n, w in wers.items()]
        if {"ours, whisper", "ours, faster-whisper"} <= wers.keys():
            gap = 100 * (wers["ours, faster-whisper"] - wers["ours, whisper"])
            lines += ["", f"faster-whisper engine minus whisper engine: {gap:+.2f} points (target ≤ +1.00: "
                      f"{'met' if gap <= 1.0 else 'NOT met'})."]
    for engine in args.batch_engines:
        batch, singles = r[f"batch:{engine}"], r[f"singles:{engine}"]
        n = len(singles)
        s_wall, s_load = sum(s["process_s"] for s in singles), sum(s["load_s"] for s in singles)
        s_work = sum(s["work_s"] for s in singles)
        lines += ["", f"## {n} files in one run against {n} one-file runs ({engine} engine)", "",
                  "| | process wall s | model loads s | wall − loads s | work s (no start, no load) |",
                  "| --- | ---: | ---: | ---: | ---: |",
                  f"| one run of {n} files (`run_many`: next extraction overlaps transcription) | "
                  f"{batch['process_s']:.2f} | {batch['load_s']:.2f} | {batch['process_s'] - batch['load_s']:.2f} | "
                  f"{batch['work_s']:.2f} |",
                  f"| {n} runs of one file | {s_wall:.2f} | {s_load:.2f} | {s_wall - s_load:.2f} | {s_work:.2f} |",
                  "", f"Minus model loads, {n} one-file runs take "
                  f"{(s_wall - s_load) / (batch['process_s'] - batch['load_s']):.2f}x "
                  f"the one run's time (work alone: {s_work / batch['work_s']:.2f}x); the one run's RTF is "
                  f"{batch['process_s'] / (n * args.seconds):.3f} including its start and model load."]
    setup = r["setup"]
    lines += ["", "## Machine", ""] + [f"- **{k}**: {v}" for k, v in machine.items()]
    lines += [f"- **model store**: {setup['pt']} (resolved in {setup['pt_s']:.1f} s); CTranslate2 {setup['ct2']} "
              f"({setup['ct2_origin']}; resolved in {setup['ct2_s']:.1f} s)",
              "", "Notes:", "",
              "- The OS file cache holds the model files for every row alike (the setup step read them).",
              "- Plain faster-whisper keeps its defaults, including `cpu_threads=0` (CTranslate2 picks); ours "
              "uses one thread per usable core (`TESTIMONY_THREADS` overrides).",
              "- With other processes on the CPUs the times inflate, decoding most of all: check the load "
              "average above, and compare only runs from the same machine and the same session.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 s files, 2 of them")
    parser.add_argument("--files", nargs="+", help="your own audio/video files instead of the generated set "
                        "(no WER without references; N-files uses these files)")
    parser.add_argument("--n-files", type=int, help="files for the one-run-vs-one-file-runs test (default 10)")
    parser.add_argument("--seconds", type=float, help="length of each generated file (default 60)")
    parser.add_argument("--asr-model", default="base", help="model name or path (default: base)")
    parser.add_argument("--language", default="en", help="language the plain tools are told (default: en)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="our engines to time stage by stage")
    parser.add_argument("--batch-engines", default="faster-whisper",
                        help="engines for the N-files test, comma-separated ('' skips it; default faster-whisper)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when present")
    parser.add_argument("--models", help="model store (sets TESTIMONY_MODELS; default: the project's)")
    parser.add_argument("--out", help=f"Markdown report (default: {DEFAULT_OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (20.0 if args.quick else 60.0)
    args.n_files = args.n_files or (2 if args.quick else 10)
    args.engines = [e for e in args.engines.split(",") if e]
    args.batch_engines = [e for e in args.batch_engines.split(",") if e]
    if args.models:
        os.environ["TESTIMONY_MODELS"] = str(Path(args.models).resolve())
    from stage_times import machine_info

    from pipeline import config

    config.apply_privacy_defaults()
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/throughput.py",
                                                 *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory(prefix="testimony-throughput-") as tmp:
        results = run_all(args, Path(tmp))
        machine = machine_info(results[f"ours:{args.engines[0]}"]["device"])
        machine.pop("torch threads", None)
        from pipeline.hardware import thread_count

        machine["inference threads (ours)"] = str(thread_count())
        md = report(results, args, machine, command)
    print(md)
    out = Path(args.out) if args.out else (Path(tempfile.gettempdir()) / "results-throughput-quick.md"
                                           if args.quick else DEFAULT_OUT)
    out.write_text(md, encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
