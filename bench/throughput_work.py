"""One measurement of bench/throughput.py, run in a fresh process so no model or cache is shared.

    python bench/throughput_work.py KIND SPEC.json RESULT.json

KIND is one of: setup, stages, batch, single, plain-whisper-load, plain-fw, cli. The spec and the
result are JSON; every result carries this process's peak RSS and its import time.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports, so their cost can be reported

import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def setup(spec: dict) -> dict:
    """Make (or find) the store's openai-whisper checkpoint and CTranslate2 folder for the model."""
    from pipeline.store.ct2_store import resolve_ct2
    from pipeline.store.whisper_store import resolve_whisper

    pt, pt_s = _timed(lambda: resolve_whisper(spec["model"]))
    ct2, ct2_s = _timed(lambda: resolve_ct2(spec["model"]))
    return {"pt": str(pt.path), "pt_s": pt_s, "ct2": str(ct2.path), "ct2_s": ct2_s, "ct2_origin": ct2.origin}


def _ours(spec: dict, language: str = "auto") -> tuple[Any, Any, float, float]:
    """Options, the loaded model and (import, load) seconds for our pipeline on spec's engine."""
    from pipeline.asr.core import AsrOptions
    from pipeline.asr.engine import engine_for
    from pipeline.run.steps import RunOptions

    imported = time.perf_counter() - STARTED
    options = RunOptions(asr=AsrOptions(model=spec["model"], language=language, engine=spec["engine"]),
                         device=spec.get("device"), follow_routes=False)  # one model throughout
    engine = engine_for(spec["engine"])
    device = engine.device(options.device)
    (model, _record), load_s = _timed(lambda: engine.load(spec["model"], device))
    return options, (model, engine.facts(model), device), imported, load_s


def stages(spec: dict) -> dict:
    """Each stage of `process_video` timed on its own, language detection split out of transcription."""
    from pipeline.archive.bundle import write_bundle
    from pipeline.asr.engine import engine_for
    from pipeline.hashing import file_sha256
    from pipeline.run.steps import build_transcript, stage_extract, stage_transcribe, stage_translate, work_dir
    from pipeline.stages.media import load_wav
    from pipeline.stages.vad import speech_regions

    options, (model, facts, device), imported, load_s = _ours(spec)
    detect = engine_for(spec["engine"]).detect_language
    archive = Path(tempfile.mkdtemp(prefix="throughput-"))
    files = []
    for video in map(Path, spec["files"]):
        t: dict[str, float] = {}
        start = time.perf_counter()
        sha = file_sha256(video)
        audio = stage_extract(video, archive, sha, None)
        t["extract"] = time.perf_counter() - start
        samples = load_wav(audio.wav_path)
        regions, t["vad"] = _timed(lambda: speech_regions(samples))
        (language, _p), t["language"] = _timed(lambda: detect(model, samples, regions))
        forced = replace(options, asr=replace(options.asr, language=language or "en"))
        (asr, info), t["transcription"] = _timed(lambda: stage_transcribe(audio, forced))
        transcript, build_s = _timed(lambda: build_transcript(video, sha, audio, asr, info, forced))
        _, t["translation"] = _timed(lambda: stage_translate(transcript))
        _, write_s = _timed(lambda: write_bundle(archive, transcript))
        t["rendering"] = build_s + write_s
        shutil.rmtree(work_dir(archive, sha), ignore_errors=True)
        files.append({"file": str(video), "audio_s": audio.decoded_duration, "stages": t, "language": language,
                      "text": " ".join(s.text for s in transcript.segments), "segments": len(transcript.segments)})
    return {"import_s": imported, "load_s": load_s, "files": files, "engine": facts, "device": device}


def _run_files(spec: dict, many: bool) -> dict:
    from pipeline.run.batch import run_many
    from pipeline.run.process import process_video

    options, (_model, facts, device), imported, load_s = _ours(spec)
    archive = Path(tempfile.mkdtemp(prefix="throughput-"))
    start = time.perf_counter()
    if many:
        results = [r for _v, r in run_many(spec["files"], archive, options)]
    else:
        results = [process_video(f, archive, options) for f in spec["files"]]
    work_s = time.perf_counter() - start
    failed = [str(r) for r in results if isinstance(r, Exception)]
    if failed:
        raise SystemExit(f"failed: {failed}")
    return {"import_s": imported, "load_s": load_s, "work_s": work_s, "engine": facts, "device": device,
            "statuses": [r.status for r in results]}


def plain_whisper_load(spec: dict) -> dict:
    """What the plain whisper CLI spends before transcribing: importing whisper and loading the model."""
    start = time.perf_counter()
    import whisper

    whisper.load_model(spec["pt"], device=spec.get("device") or ("cuda" if _cuda() else "cpu"))
    return {"load_s": time.perf_counter() - start}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def plain_fw(spec: dict) -> dict:
    """faster-whisper as its README shows it: WhisperModel(...).transcribe(file), default options."""
    from faster_whisper import WhisperModel

    from pipeline.hardware import ct2_cuda_available

    imported = time.perf_counter() - STARTED
    device = spec.get("device") or ("cuda" if ct2_cuda_available() else "cpu")
    compute = "float16" if device == "cuda" else "int8"
    model, load_s = _timed(lambda: WhisperModel(spec["ct2"], device=device, compute_type=compute))
    texts = []
    for f in spec["files"]:
        start = time.perf_counter()
        segments, _info = model.transcribe(f, language=spec.get("language"))
        text = " ".join(s.text.strip() for s in segments)  # the generator does the work
        texts.append({"file": f, "seconds": time.perf_counter() - start, "text": text})
    return {"import_s": imported, "load_s": load_s, "files": texts, "device": device, "compute_type": compute}


def cli(spec: dict) -> dict:
    """Run a command; its wall time and the peak RSS of its process (this worker's only child)."""
    start = time.perf_counter()
    done = subprocess.run(spec["command"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{spec['command'][0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {"wall_s": time.perf_counter() - start, "child_rss_mib": _rss_mib(resource.RUSAGE_CHILDREN)}


KINDS = {"setup": setup, "stages": stages, "batch": lambda s: _run_files(s, True),
         "single": lambda s: _run_files(s, False), "plain-whisper-load": plain_whisper_load,
         "plain-fw": plain_fw, "cli": cli}


def main() -> None:
    kind, spec_path, result_path = sys.argv[1:4]
    spec = json.loads(Path(spec_path).read_text())
    from pipeline import config

    config.apply_privacy_defaults()
    result = KINDS[kind](spec)
    result["rss_mib"] = _rss_mib()
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
