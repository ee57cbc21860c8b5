"""Prefect flow over the pipeline stages: retries for transient faults, caching on the video's SHA-256.

The stages are the plain functions in `pipeline/`; this module only adds orchestration. Parameters are
flat and JSON-friendly so a deployment's form in the Prefect UI can set them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline import config, custody, originals
from pipeline.asr import AsrResult
from pipeline.bundle import write_bundle
from pipeline.errors import BadInputError, TestimonyError
from pipeline.hashing import file_sha256
from pipeline.media import ExtractedAudio, check_readable
from pipeline.checkpoint import Checkpoint
from pipeline.process import (RunOptions, RunResult, Translation, apply_translation, build_transcript,
                              finished_extract, record_transcribe_resume, reusable_bundle, stage_extract,
                              stage_transcribe, translate_english, wav_sha256, work_dir)
from pipeline.transcript import Transcript

from .scale_out import gpu_slot

config.apply_privacy_defaults()


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry faults of the machine (I/O hiccups, a stalled tool), never bad input or a bug."""
    try:
        state.result()
    except (TestimonyError, FileNotFoundError, PermissionError, IsADirectoryError):
        return False
    except (OSError, subprocess.TimeoutExpired):
        return True
    except Exception:
        return False
    return False


def _asr_key(_ctx: Any, params: dict[str, Any]) -> str:
    return f"asr-{params['sha256']}-{params['options'].key()}"


def _translate_key(_ctx: Any, params: dict[str, Any]) -> str:
    from pipeline.translate import MissingTranslation, find_translator

    try:  # a newly installed package must invalidate an "untranslated" result
        route = find_translator(params["language"], "en").packages
    except MissingTranslation:
        route = None
    return f"translate-{params['language']}-{_digest(params['texts'])}-{_digest(route)}"


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


@task(name="hash", retries=2, retry_delay_seconds=2, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def hash_video(video: str) -> str:
    check_readable(Path(video))
    return file_sha256(video)


@task(name="extract-audio", retries=2, retry_delay_seconds=2, retry_condition_fn=_transient,
      cache_policy=NO_CACHE)  # stage_extract reuses a finished WAV itself, after checking its hash
def extract(video: str, archive: str, sha256: str, audio_track: int | None) -> ExtractedAudio:
    return stage_extract(Path(video), Path(archive), sha256, audio_track)


@task(name="transcribe", retries=1, retry_condition_fn=_transient, cache_key_fn=_asr_key,
      persist_result=True)
def transcribe(audio: ExtractedAudio, sha256: str, options: RunOptions) -> tuple[AsrResult, dict]:
    return stage_transcribe(audio, options)


@task(name="translate", retries=1, retry_condition_fn=_transient, cache_key_fn=_translate_key,
      persist_result=True)
def translate(language: str, texts: list[str], checkpoint: str | None = None) -> Translation:
    return translate_english(language, texts, checkpoint=Checkpoint(checkpoint) if checkpoint else None)


@task(name="write-bundle", retries=2, retry_delay_seconds=2, retry_condition_fn=_transient,
      cache_policy=NO_CACHE)
def publish(archive: str, transcript: Transcript, video: str | None = None) -> str:
    bundle = write_bundle(archive, transcript, video=video)
    shutil.rmtree(work_dir(Path(archive), transcript.source.sha256), ignore_errors=True)
    return str(bundle)


@flow(name="process-video", log_prints=True)
def process_video_flow(
    video: str,
    out: str | None = None,
    language: str = "auto",
    asr_model: str | None = None,
    whisper_token: str | None = None,
    audio_track: int | None = None,
    translate_to_english: bool = True,
    beam_size: int | None = None,
    vad: bool = True,
    word_timestamps: bool = True,
    temperature_fallback: bool = True,
    device: str | None = None,
    force: bool = False,
    engine: str = "whisper",
) -> RunResult:
    """Turn one video into a linked transcript bundle under the archive `out`."""
    archive = str(config.archive_dir(out))
    options = RunOptions.from_flat(
        language=language, asr_model=asr_model, whisper_token=whisper_token, audio_track=audio_track,
        translate_to_english=translate_to_english, beam_size=beam_size, vad=vad,
        word_timestamps=word_timestamps, temperature_fallback=temperature_fallback, device=device,
        engine=engine)
    sha256 = hash_video(video)
    custody.record_arrival(archive, sha256, video)
    try:
        source = str(originals.preserve(video, archive, sha256))  # tools read the archive's read-only copy
    except BaseException as exc:
        custody.record_failure(archive, sha256, "preserve", exc)
        raise
    if not force and (existing := reusable_bundle(Path(archive), sha256, options)):
        custody.record_unlogged_publish(archive, sha256, existing)
        custody.append(archive, sha256, "reused", bundle=existing.name, options_key=options.key())
        return RunResult(Path(video), existing, "reused")
    refresh, work, stage = {"refresh_cache": force}, work_dir(Path(archive), sha256), "extract"
    try:  # the same custody events as `testimony run`, resumes included
        if (audio := finished_extract(work, options.audio_track)) is not None:  # a killed run's WAV, hash checked
            custody.append(archive, sha256, "resume", stage="extract", wav=audio.wav_path.name)
        else:
            try:
                audio = extract.with_options(**refresh)(source, archive, sha256, options.audio_track)
            except BadInputError as exc:  # about the archive's copy: name the file the user gave
                raise originals.named_as_received(exc, Path(source), Path(video)) from None
            custody.record_extract(archive, sha256, audio, wav_sha256=wav_sha256(audio))
        stage = "transcribe"
        record_transcribe_resume(Path(archive), sha256, audio, options)
        with gpu_slot():  # a slot of the GPU's global limit when a scale-out worker names one
            asr, model_info = transcribe.with_options(**refresh)(audio, sha256, options)
        custody.record_transcribe(archive, sha256, model_info, asr.language, len(asr.segments))
        transcript = build_transcript(Path(video), sha256, audio, asr, model_info, options, source=Path(source))
        if options.translate and transcript.needs_translation and transcript.segments:
            stage = "translate"
            texts = [s.text for s in transcript.segments]
            apply_translation(transcript, translate.with_options(**refresh)(
                transcript.language, texts, str(work / "translate.jsonl")))
            custody.record_translate(archive, sha256, transcript.models.get("translation"),
                                     sum(s.translation is not None for s in transcript.segments))
        stage = "publish"
        bundle = Path(publish(archive, transcript, source))
        custody.record_publish(archive, sha256, bundle)
    except BaseException as exc:
        custody.record_failure(archive, sha256, stage, exc)
        raise
    record_in_archive(Path(archive), bundle, transcript)
    return RunResult(Path(video), bundle, "done", list(transcript.warnings))


def record_in_archive(archive: Path, bundle: Path, transcript: Transcript) -> None:
    """Catalog entry and UI artifacts; the bundle on disk is already complete if these fail."""
    from pipeline import catalog

    from .artifacts import publish_transcript, refresh_archive_table

    transcript.warnings += catalog.index_or_warn(archive, bundle)
    publish_transcript(transcript, bundle)
    refresh_archive_table(archive)
