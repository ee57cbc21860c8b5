"""`testimony eval`: score the real pipeline on clips with known words, so model choices rest on numbers.

Manifest: JSON Lines (UTF-8), one clip per line; blank lines and lines starting with `#` are skipped.
    {"id": "kk-art3.1", "audio": "kk/art3.1.wav", "language": "kk",
     "reference": "Әр адам өмір сүруге ...", "reference_en": "Everyone has the right to life ..."}
  - `audio` (required): audio or video file, relative to the manifest's folder (or absolute).
  - `language` (required): the spoken language's code (kk, ug, en, ...).
  - `reference` (required): what is said, in the language's own script.
  - `reference_en` (optional): a reference English translation, for chrF and BLEU.
  - `id` (optional, default: the audio file's stem); `whisper_token` (optional): the Whisper token
    to decode this clip with (needed for Uyghur: Whisper has none); other keys are ignored.
JSON Lines because one line per clip diffs and appends cleanly and texts need no TSV escaping.

What runs, per clip: the real pipeline, `process_video` into `REPORT_DIR/bundles` (the bundles stay
for inspection), with `--force`, so every clip is timed. Language (`--language`):
  - `clip` (default): the clip's own language is forced, so WER measures transcription and not
    detection; language ID is measured by one extra `detect_language` pass over the clip's voiced
    audio (the same VAD-voted detection `run` does; about one encoder pass per 30 s voiced window,
    small beside decoding). Its time is reported apart from the real-time factor.
  - `auto`: the pipeline detects, as `testimony run` does by default; WER then includes the cost of
    misdetection and the pipeline's own detection gives the language-ID figure.
Whisper token: `--whisper-token` applies to clips whose language Whisper has no token for (ug), so
a mixed manifest decodes kk and en with their own tokens; else the clip's `whisper_token`; else the
language's own token. A clip that cannot run (no token, unreadable file) is reported with its error
and scored as an empty transcript, never silently dropped. With `auto`, as with `run`, the flag
applies to every clip and the manifest token is not used.

Scores, after per-script normalisation (`pipeline.evaluation.textnorm`): WER and CER (jiwer; CER counts spaces
as characters) per clip, and per language as corpus figures: total edits / total reference words
(or characters), never a mean of per-clip rates. chrF and BLEU (sacrebleu, corpus-level per
language) on the English where a clip has `reference_en` and the pipeline produced a translation;
otherwise the report says why they are missing. Language-ID accuracy per language and over the
languages Whisper can detect (it has no Uyghur class, so ug can never be right). Real-time factor:
pipeline seconds / audio seconds, the model loaded once beforehand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.evaluation.textnorm import describe, normalize

SCHEMA = "testimony.eval/1"


@dataclass(frozen=True)
class Clip:
    id: str
    audio: Path
    language: str
    reference: str
    reference_en: str | None = None
    whisper_token: str | None = None


@dataclass
class ClipResult:
    """One clip's outcome: texts, figures and timings, as they go into report.json."""

    id: str
    audio: str
    language: str
    reference: str
    reference_en: str | None
    hypothesis: str = ""
    english: str | None = None
    whisper_token: str | None = None
    detected_language: str | None = None  # among the expected languages (`--expect`), as `run` picks
    language_probability: float | None = None
    detected_any: str | None = None  # among every language Whisper knows (clip mode's one pass)
    language_scores: dict[str, float] | None = None  # clip mode: Whisper's 8 most probable, to compare sets
    duration: float = 0.0
    process_s: float = 0.0
    detect_s: float | None = None
    bundle: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)


def load_manifest(path: Path) -> list[Clip]:
    """Parse and check every line first, so a typo on line 40 fails before an hour of decoding."""
    clips, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc}); each line is one clip object") from None
        missing = [k for k in ("audio", "language", "reference") if not isinstance(entry.get(k), str)]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)} (audio, language and reference are required)")
        audio = (path.parent / entry["audio"]).resolve()
        if not audio.is_file():
            raise ValueError(f"{where}: audio file {audio} not found (paths are relative to the manifest)")
        clip = Clip(id=str(entry.get("id") or audio.stem), audio=audio, language=entry["language"].lower(),
                    reference=entry["reference"], reference_en=entry.get("reference_en") or None,
                    whisper_token=entry.get("whisper_token") or None)
        if not normalize(clip.reference, clip.language):
            raise ValueError(f"{where}: the reference is empty after normalisation")
        if clip.id in seen:
            raise ValueError(f"{where}: duplicate id {clip.id!r}")
        seen.add(clip.id)
        clips.append(clip)
    if not clips:
        raise ValueError(f"{path}: no clips")
    return clips


def score_text(reference: str, hypothesis: str, language: str) -> dict[str, Any]:
    """Word and character edit counts and rates after the language's normalisation."""
    import jiwer

    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref, hyp)
    word_edits = words.substitutions + words.deletions + words.insertions
    char_edits = chars.substitutions + chars.deletions + chars.insertions
    ref_words = words.hits + words.substitutions + words.deletions
    ref_chars = chars.hits + chars.substitutions + chars.deletions
    return {"reference_norm": ref, "hypothesis_norm": hyp,
            "ref_words": ref_words, "word_edits": word_edits, "wer": word_edits / ref_words,
            "substitutions": words.substitutions, "deletions": words.deletions, "insertions": words.insertions,
            "ref_chars": ref_chars, "char_edits": char_edits, "cer": char_edits / ref_chars}


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus chrF and BLEU (sacrebleu defaults: chrF n=6 beta=2, BLEU 13a tokens) on raw English."""
    import sacrebleu

    return {"chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score}


def clip_token(clip: Clip, flag: str | None) -> str | None:
    """The flag names a fine-tune's token for a language Whisper lacks; kk and en keep their own."""
    from whisper.tokenizer import LANGUAGES

    if flag and clip.language not in LANGUAGES:
        return flag
    return clip.whisper_token


def detect_clip(clip: Clip, settings: dict[str, Any], expected: tuple[str, ...] | None,
                device: str) -> tuple[str | None, float | None, str | None, dict[str, float], float]:
    """Language detection on the clip's extracted, voiced audio, by the engine `run` would use, as
    the pipeline's auto mode does it: (among `expected`, its probability, unrestricted, the 8 most
    probable languages, seconds).
    Both choices come from one pass: the same probabilities, picked two ways (`asr.langid.pick`)."""
    from pipeline.asr.engine import engine_for
    from pipeline.asr.langid import pick
    from pipeline.stages.media import extract_audio, load_wav, probe
    from pipeline.stages.vad import speech_regions

    name, detector = detection_engine(settings)
    engine = engine_for(name)
    model, _ = engine.load(detector, engine.device(device))
    with tempfile.TemporaryDirectory(prefix="testimony-eval-") as tmp:
        extracted = extract_audio(probe(clip.audio), Path(tmp) / "audio.wav", track=settings.get("audio_track"))
        audio = load_wav(extracted.wav_path)
    started = time.perf_counter()
    totals = engine.language_totals(model, audio, speech_regions(audio))
    language, probability = pick(totals, expected)
    top = dict(sorted(((code, round(p, 4)) for code, p in totals.items()), key=lambda kv: -kv[1])[:8])
    return language, probability, pick(totals)[0], top, round(time.perf_counter() - started, 3)


def detection_engine(settings: dict[str, Any]) -> tuple[str, str]:
    """(engine, model) that detect languages: the run's, but Whisper's `auto` model for a CTC run (a CTC
    model cannot tell languages apart; language ID stays Whisper's, as in `run`)."""
    from pipeline.store.routes import resolve_asr

    engine = settings.get("engine") or "whisper"
    if engine == "ctc":
        return "whisper", resolve_asr("auto", None, None)[0]
    return engine, detection_model(settings)


def detection_model(settings: dict[str, Any]) -> str:
    """The model named with --asr-model, else the one the `auto` route detects languages with."""
    from pipeline.store.routes import resolve_asr

    return settings.get("asr_model") or resolve_asr("auto", None, None)[0]


def run_clip(clip: Clip, archive: Path, settings: dict[str, Any], mode: str) -> ClipResult:
    """The real pipeline on one clip; any failure becomes the clip's error, scored as no text."""
    from pipeline.errors import TestimonyError
    from pipeline.run.options import expected_languages
    from pipeline.run.process import RunOptions, process_video
    from pipeline.transcript import Transcript

    result = ClipResult(clip.id, str(clip.audio), clip.language, clip.reference, clip.reference_en)
    try:
        if mode == "clip":
            token = clip_token(clip, settings.get("whisper_token"))
            options = RunOptions.from_flat(**{**settings, "language": clip.language, "whisper_token": token})
            (result.detected_language, probability, result.detected_any, result.language_scores,
             result.detect_s) = detect_clip(
                clip, settings, expected_languages(settings.get("expect")), settings.get("device"))
            result.language_probability = None if probability is None else round(probability, 4)
        else:
            options = RunOptions.from_flat(**{**settings, "language": "auto"})
        started = time.perf_counter()
        run = process_video(clip.audio, archive, options, force=True)
        result.process_s = round(time.perf_counter() - started, 3)
        transcript = Transcript.load(run.bundle / "transcript.json")
        result.bundle, result.warnings = str(run.bundle), list(transcript.warnings)
        result.duration = transcript.source.decoded_duration or 0.0
        result.whisper_token = transcript.models["asr"].get("whisper_token")
        result.hypothesis = " ".join(s.text.strip() for s in transcript.segments)
        translations = [s.translation for s in transcript.segments]
        if translations and all(isinstance(t, str) for t in translations):
            result.english = " ".join(t.strip() for t in translations)
        if mode == "auto":
            result.detected_language = transcript.detected_language
            result.language_probability = transcript.language_probability
    except Exception as exc:  # one bad clip never stops the evaluation
        result.error = str(exc) if isinstance(exc, TestimonyError) else f"{type(exc).__name__}: {exc}"
    result.scores = score_text(clip.reference, result.hypothesis, clip.language)
    return result


def _translation_reason(language: str, settings: dict[str, Any], results: list[ClipResult]) -> str:
    """Why a language has no chrF/BLEU: the user can act on the answer."""
    from pipeline.stages.translate import MissingTranslation, find_translator

    if language == "en":
        return "English speech is not translated"
    if not any(r.reference_en for r in results):
        return "no clip has a reference_en translation in the manifest"
    if not settings.get("translate_to_english", True):
        return "translation turned off (--no-translate)"
    try:
        find_translator(language, "en")
    except MissingTranslation as exc:
        return str(exc)
    return "no clip of this language got an English translation (see the clips' warnings)"


def aggregate(results: list[ClipResult], settings: dict[str, Any]) -> dict[str, Any]:
    """Per-language corpus figures and the overall real-time factor and language-ID accuracy."""
    from whisper.tokenizer import LANGUAGES

    languages: dict[str, Any] = {}
    for language in sorted({r.language for r in results}):
        group = [r for r in results if r.language == language]
        ref_words = sum(r.scores["ref_words"] for r in group)
        ref_chars = sum(r.scores["ref_chars"] for r in group)
        audio_s, process_s = sum(r.duration for r in group), sum(r.process_s for r in group)
        correct = sum(r.detected_language == language for r in group)
        detectable = language in LANGUAGES
        entry = {
            "clips": len(group), "failed": sum(r.error is not None for r in group),
            "audio_s": round(audio_s, 2), "process_s": round(process_s, 2),
            "rtf": round(process_s / audio_s, 3) if audio_s else None,
            "ref_words": ref_words, "word_edits": sum(r.scores["word_edits"] for r in group),
            "ref_chars": ref_chars, "char_edits": sum(r.scores["char_edits"] for r in group),
            "normaliser": describe(language),
            "language_id": {"correct": correct, "total": len(group), "detectable": detectable,
                            "accuracy": correct / len(group) if detectable else None,
                            "detected": dict(Counter(str(r.detected_language) for r in group).most_common()),
                            **_unrestricted(group, language)},
        }
        entry["wer"] = entry["word_edits"] / ref_words
        entry["cer"] = entry["char_edits"] / ref_chars
        pairs = [(r.english, r.reference_en) for r in group if r.english and r.reference_en]
        if pairs and language != "en":
            entry["translation"] = {"clips": len(pairs), **translation_scores(*map(list, zip(*pairs)))}
        else:
            entry["translation"] = {"clips": 0, "skipped": _translation_reason(language, settings, group)}
        languages[language] = entry
    scored = [r for r in results if r.language in LANGUAGES]
    audio_s, process_s = sum(r.duration for r in results), sum(r.process_s for r in results)
    detect = [r.detect_s for r in results if r.detect_s is not None]
    return {"languages": languages, "totals": {
        "clips": len(results), "failed": sum(r.error is not None for r in results),
        "audio_s": round(audio_s, 2), "process_s": round(process_s, 2),
        "rtf": round(process_s / audio_s, 3) if audio_s else None,
        "detect_s_mean": round(sum(detect) / len(detect), 3) if detect else None,
        "language_id": {"correct": sum(r.detected_language == r.language for r in scored), "total": len(scored),
                        "accuracy": (sum(r.detected_language == r.language for r in scored) / len(scored)
                                     if scored else None),
                        "excluded": sorted({r.language for r in results} - {r.language for r in scored})},
    }}


def _unrestricted(group: list[ClipResult], language: str) -> dict[str, Any]:
    """Clip mode's second reading of the same probabilities: the pick among every language, for
    comparing `--expect` with detection as it was before it (empty in auto mode, which has one)."""
    if any(r.detected_any is None and r.error is None for r in group):
        return {}
    return {"correct_any": sum(r.detected_any == language for r in group),
            "detected_any": dict(Counter(str(r.detected_any) for r in group).most_common())}


def _machine(device: str, load_before: list[float]) -> dict[str, Any]:
    """Where the timings were taken; other processes on the CPUs slow Whisper far beyond their share."""
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": device,
            "load_average_before": load_before, "load_average_after": _load()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def evaluate(manifest: Path, out_dir: Path, settings: dict[str, Any], *, mode: str = "clip",
             log=None) -> dict[str, Any]:
    """Run every clip, score it, and write `report.json` and `report.md` into `out_dir`."""
    import whisper

    from pipeline import __version__
    from pipeline.asr.engine import engine_for
    from pipeline.evaluation.report import render_markdown

    clips = load_manifest(manifest)
    say = log or (lambda _msg: None)
    load_before = _load()
    engine = engine_for(settings.get("engine") or "whisper")
    device = engine.device(settings.get("device"))
    started = time.perf_counter()
    _, record = engine.load(detection_model(settings), device)  # loaded once, outside every clip's timing
    load_s = time.perf_counter() - started
    results = []
    for n, clip in enumerate(clips, 1):
        result = run_clip(clip, out_dir / "bundles", settings, mode)
        results.append(result)
        say(f"[{n}/{len(clips)}] {clip.id} ({clip.language}): WER {result.scores['wer']:.3f} "
            f"CER {result.scores['cer']:.3f} detected {result.detected_language}"
            + (f" ERROR {result.error}" if result.error else ""))
    report = {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "manifest": str(manifest.resolve()), "mode": mode, "settings": settings,
        "model": {**record.to_dict(), "load_s": round(load_s, 2)}, "machine": _machine(device, load_before),
        "versions": {"testimony": __version__, "openai-whisper": whisper.__version__, **_metric_versions()},
        **aggregate(results, settings),
        "clips": [asdict(r) for r in results],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _metric_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("jiwer", "sacrebleu")}


def run_eval(args: argparse.Namespace) -> int:
    """The `testimony eval` command: exit 1 when any clip failed, 2 on a bad manifest."""
    from pipeline.errors import TestimonyError
    from pipeline.run.options import settings as flat_settings

    settings = {**flat_settings(args, "eval"), "audio_track": None}
    if getattr(args, "archive", None):  # its adapted models' routes: `RunOptions.from_flat(archive=...)`
        settings["archive"] = str(Path(args.archive).resolve())
    out_dir = Path(args.out) if args.out else args.manifest.resolve().parent / "report"
    try:
        report = evaluate(args.manifest, out_dir, settings, mode=args.language,
                          log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except (OSError, ValueError) as exc:  # unreadable or malformed manifest, unwritable report folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TestimonyError as exc:  # the model itself is missing: nothing could be scored
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for language, entry in report["languages"].items():
        tr = entry["translation"]
        mt = f"chrF {tr['chrf']:.1f} BLEU {tr['bleu']:.1f}" if tr["clips"] else "translation skipped"
        lid = entry["language_id"]
        print(f"{language}: {entry['clips']} clips  WER {entry['wer']:.3f}  CER {entry['cer']:.3f}  {mt}  "
              f"language ID {lid['correct']}/{lid['total']}  RTF {entry['rtf']}")
    print(out_dir / "report.md")
    return 1 if report["totals"]["failed"] else 0
