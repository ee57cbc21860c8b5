"""One video through every stage, as plain function calls. Prefect's flow calls the same stages.

Resumable: the work folder (`work_dir`) keeps the extracted WAV with a record of it, and checkpoints
of decoded chunks and translated batches. A run killed at any point is picked up by the next run of
the same video and options from the last finished piece; the folder goes once the bundle is out.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pipeline import __version__, atomic, config
from pipeline.archive import catalog, custody, originals
from pipeline.archive.bundle import TRANSCRIPT, find_bundle, write_bundle
from pipeline.asr.core import AsrOptions, AsrResult
from pipeline.errors import BadInputError
from pipeline.hardware import configure_torch
from pipeline.hashing import file_sha256
from pipeline.names import display_name
from pipeline.stages.audio_source import WavAudio
from pipeline.stages.checkpoint import Checkpoint
from pipeline.stages.media import AudioStream, ExtractedAudio, check_readable, extract_audio, ffmpeg_version, probe
from pipeline.transcript import TRUNCATED, UNTRANSLATED, Source, Transcript

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    asr: AsrOptions = field(default_factory=AsrOptions)
    audio_track: int | None = None
    translate: bool = True
    device: str | None = None  # None: CUDA when present, else CPU
    follow_routes: bool = True  # an auto-detected language is decoded with its route's model

    @classmethod
    def from_flat(cls, *, language: str = "auto", asr_model: str | None = None, whisper_token: str | None = None,
                  audio_track: int | None = None, translate_to_english: bool = True,
                  beam_size: int | None = None, vad: bool = True, word_timestamps: bool = True,
                  temperature_fallback: bool = True, device: str | None = None,
                  engine: str = "whisper") -> "RunOptions":
        """From the flat, JSON-friendly settings the CLI and the Prefect form both speak.

        An unnamed model or token comes from the language's route (`testimony models`); a language no
        installed model can do raises ModelMissingError naming the command that fixes it.
        """
        from pipeline.store.routes import resolve_asr

        follow_routes = asr_model is None  # a model the user named is used for every language
        asr_model, whisper_token = resolve_asr(language, asr_model, whisper_token)
        asr = AsrOptions(model=asr_model, language=language, whisper_token=whisper_token,
                         beam_size=beam_size, vad=vad, word_timestamps=word_timestamps,
                         temperatures=AsrOptions.temperatures if temperature_fallback else (0.0,),
                         engine=engine)
        return cls(asr=asr, audio_track=audio_track, translate=translate_to_english, device=device,
                   follow_routes=follow_routes)

    def key(self) -> str:
        """Digest of every option that changes the output; part of the cache key with the SHA-256."""
        data = {"asr": self.asr.to_dict(), "audio_track": self.audio_track, "translate": self.translate}
        if data["asr"]["engine"] == "whisper":  # the default engine keeps the keys bundles had before engines
            del data["asr"]["engine"]
        if self.asr.language == "auto" and self.follow_routes:  # which models the routes name matters
            from pipeline.store.routes import load_routes

            data["routes"] = {k: v.asr_model for k, v in sorted(load_routes().items())}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunResult:
    video: Path
    bundle: Path
    status: str  # "done" or "reused"
    warnings: list[str] = field(default_factory=list)


def work_dir(archive: Path, sha256: str) -> Path:
    """Derived files (the extracted WAV) live here, never beside the original."""
    return archive / ".work" / sha256[:12]


EXTRACTED = "audio.json"  # written after the WAV is complete: the WAV's hash and what was extracted


def stage_extract(video: Path, archive: Path, sha256: str, audio_track: int | None) -> ExtractedAudio:
    """Extract the audio, or reuse the WAV a killed run already finished (after checking its hash)."""
    work = work_dir(archive, sha256)
    if (finished := finished_extract(work, audio_track)) is not None:
        return finished
    audio = extract_audio(probe(video), work / "audio.wav", track=audio_track)
    record = {"audio_track": audio_track, "wav_sha256": file_sha256(audio.wav_path),
              "audio": {**asdict(audio), "wav_path": audio.wav_path.name}}
    write_atomic(work / EXTRACTED, json.dumps(record, indent=2))
    return audio


def finished_extract(work: Path, audio_track: int | None) -> ExtractedAudio | None:
    try:
        record = json.loads((work / EXTRACTED).read_text(encoding="utf-8"))
        data = dict(record["audio"])
        if record["audio_track"] != audio_track or file_sha256(work / data["wav_path"]) != record["wav_sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ExtractedAudio(**{**data, "wav_path": work / data["wav_path"], "stream": AudioStream(**data["stream"])})


def write_atomic(path: Path, text: str) -> None:
    """A file of the archive, replaced atomically with the archive's file mode."""
    atomic.write_text(path, text, mode=config.file_mode())


def record_transcribe_resume(archive: Path, sha256: str, audio: ExtractedAudio, options: RunOptions) -> None:
    """Log, before decoding, how many chunks an interrupted run already decoded (and will not redo)."""
    if done := len(asr_checkpoint(audio, options).find("group")):
        custody.append(archive, sha256, "resume", stage="transcribe", chunks_done=done, options_key=options.key())


def asr_checkpoint(audio: ExtractedAudio, options: RunOptions, model_sha256: str | None = None) -> Checkpoint:
    """Decoded chunks of this WAV under these options (another option set keeps its own file).

    With `model_sha256`, chunks decoded from another WAV or by other model weights under the same
    name are dropped, not mixed into the transcript.
    """
    path = audio.wav_path.parent / f"asr-{options.key()}.jsonl"
    if model_sha256 is None:
        return Checkpoint(path)
    return Checkpoint(path, identity={"model_sha256": model_sha256, "wav_sha256": wav_sha256(audio)})


def wav_sha256(audio: ExtractedAudio) -> str:
    """The WAV's hash as recorded when it was extracted (hashing hundreds of MB once is enough)."""
    try:
        return json.loads((audio.wav_path.parent / EXTRACTED).read_text(encoding="utf-8"))["wav_sha256"]
    except (OSError, ValueError, KeyError):
        return file_sha256(audio.wav_path)


def _routed_options(options: RunOptions, language: str) -> AsrOptions | None:
    """Options for decoding an auto-detected `language` with its route's model, or None to keep going."""
    if not options.follow_routes:
        return None
    from pipeline.store.routes import route_for

    route = route_for(language)
    if not route.asr_model or route.asr_model == options.asr.model:
        return None
    return replace(options.asr, model=route.asr_model, language=language,
                   whisper_token=route.whisper_token or None)


def asr_engine(options: RunOptions) -> tuple[str, Callable, Callable, Callable[[Any], dict]]:
    """(device, load, transcribe, facts) of the engine the options name; both share one interface."""
    if options.asr.engine == "faster-whisper":
        from pipeline.asr import fw_engine

        return (fw_engine.resolve_device(options.device), fw_engine.load_faster_whisper, fw_engine.transcribe,
                fw_engine.engine_facts)
    import whisper  # torch comes with it: only this engine pays for importing it

    from pipeline.asr.whisper_engine import default_device, transcribe
    from pipeline.store.whisper_store import load_whisper

    configure_torch()
    return (options.device or default_device(), load_whisper, transcribe,
            lambda _model: {"engine": "openai-whisper", "engine_version": whisper.__version__})


def stage_transcribe(audio: ExtractedAudio, options: RunOptions, *, progress: bool = False) -> tuple[AsrResult, dict]:
    device, load_model, run_engine, facts = asr_engine(options)
    model, record = load_model(options.asr.model, device)
    used = {"record": record, "options": options.asr}

    def reroute(language: str):
        """The detected language's route, when it wants another model than the one that detected it."""
        asr = _routed_options(options, language)
        if asr is None:
            return None
        routed_model, used["record"] = load_model(asr.model, device)
        used["options"] = asr
        return routed_model, asr

    result = run_engine(model, WavAudio(audio.wav_path), options.asr, progress=progress, reroute=reroute,
                        checkpoint=asr_checkpoint(audio, options, record.sha256))
    model_info = {**facts(model), **used["record"].to_dict(),
                  "whisper_token": result.whisper_token, "options": used["options"].to_dict()}
    return result, model_info


@dataclass(frozen=True)
class Translation:
    """English per segment (None when no package covers the language) and how it was made."""

    english: list[str] | None
    route: dict[str, Any] | None
    warning: str | None = None


TRANSLATE_BATCH = 32  # segments per checkpointed batch; fixed, so a resumed run batches alike


def translation_route(language: str) -> tuple[str | None, Any]:
    """(pivot, TranslatorInfo or the MissingTranslation) for `language` -> English as installed now.

    The pivot is the language route's `translate_via`; reuse checks and cache keys compare this, so
    a newly installed package or a changed pivot makes the old translation stale.
    """
    from pipeline.stages.translate import MissingTranslation, find_translator
    from pipeline.store.routes import route_for

    via = route_for(language).translate_via or None  # a route may pin the pivot (e.g. through Russian)
    try:
        return via, find_translator(language, "en", via=via)
    except MissingTranslation as exc:
        return via, exc


def translation_record(language: str) -> dict[str, Any] | None:
    """What a transcript translated now would record as `models.translation` (None: no package)."""
    _via, info = translation_route(language)
    return None if isinstance(info, Exception) else {"engine": "argostranslate", **asdict(info)}


def translate_english(language: str, texts: list[str], *, checkpoint: Checkpoint | None = None) -> Translation:
    """English for each text, batch by batch; batches already in `checkpoint` are not translated again."""
    from pipeline.stages.translate import translate_texts

    via, info = translation_route(language)
    if isinstance(info, Exception):
        return Translation(None, None, str(info))
    checkpoint = checkpoint or Checkpoint(None)
    key = hashlib.sha256(json.dumps([language, via, texts, asdict(info)]).encode()).hexdigest()
    english: list[str] = []
    for batch in checkpoint.find("batch"):
        if batch["key"] == key and batch["start"] == len(english):
            english += batch["english"]
    for start in range(len(english), len(texts), TRANSLATE_BATCH):
        done = translate_texts(texts[start:start + TRANSLATE_BATCH], language, "en", via=via)
        checkpoint.add("batch", key=key, start=start, english=done)
        english += done
    return Translation(english, {"engine": "argostranslate", **asdict(info)})


def apply_translation(transcript: Transcript, translation: Translation) -> Transcript:
    """A missing package leaves the segments flagged `untranslated`, never lost."""
    transcript.models["translation"] = translation.route
    for n, seg in enumerate(transcript.segments):
        seg.translation = translation.english[n] if translation.english is not None else None
        if seg.translation is None:
            seg.flag(UNTRANSLATED)
        elif UNTRANSLATED in seg.flags:
            seg.flags.remove(UNTRANSLATED)
    if translation.warning:
        transcript.warnings.append(translation.warning)
    return transcript


def stage_translate(transcript: Transcript, *, checkpoint: Checkpoint | None = None) -> Transcript:
    if not transcript.needs_translation or not transcript.segments:
        return transcript
    texts = [s.text for s in transcript.segments]
    return apply_translation(transcript, translate_english(transcript.language, texts, checkpoint=checkpoint))


def build_transcript(video: Path, sha256: str, audio: ExtractedAudio, asr: AsrResult,
                     model_info: dict, options: RunOptions, *, source: Path | None = None) -> Transcript:
    """`video` gives the name; `source` (the file the tools read, the archive's copy) the size, since
    the inbox file may have been moved away during a long run."""
    transcript = Transcript(
        source=Source(file_name=display_name(video), sha256=sha256, size=(source or video).stat().st_size,
                      duration=audio.container_duration, audio_track=asdict(audio.stream),
                      decoded_duration=round(audio.decoded_duration, 3)),
        language=asr.language,
        detected_language=asr.detected_language,
        language_probability=None if asr.language_probability is None else round(asr.language_probability, 4),
        models={"asr": model_info, "ffmpeg": ffmpeg_version(), "testimony": __version__,
                "python": platform.python_version(), "options_key": options.key()},
        segments=asr.segments,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if audio.truncated:
        transcript.flags.append(TRUNCATED)
        transcript.warnings.append(
            f"decoded only {audio.decoded_duration:.1f} s of the {audio.expected_duration:.1f} s the "
            "container reports: the file is probably truncated; find a complete copy of the original")
    elif (audio.container_duration
          and audio.container_duration - audio.decoded_duration > max(5.0, 0.1 * audio.decoded_duration)):
        # The audio is whole by its own stream's length, but the container claims far more: record both.
        transcript.warnings.append(
            f"the container claims {audio.container_duration:.1f} s but its audio is {audio.decoded_duration:.1f} s "
            "long (all of it was transcribed); the header may have been edited or damaged")
    if not asr.speech:
        transcript.warnings.append("no speech found in the audio")
    return transcript


def reusable_bundle(archive: Path, sha256: str, options: RunOptions) -> Path | None:
    """A finished bundle for the same video made with the same options."""
    bundle = find_bundle(archive, sha256)
    if bundle is None:
        return None
    try:
        data = json.loads((bundle / TRANSCRIPT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("models", {}).get("options_key") != options.key():
        return None
    if options.translate and _translation_stale(data):
        return None  # a package installed since, or another pivot: translate now instead of reusing
    return bundle


def _translation_stale(data: dict) -> bool:
    """Whether translating now would use another route than the bundle's (or one where it had none)."""
    language = data.get("language")
    if language in (None, "en") or not data.get("segments"):
        return False
    return (data.get("models") or {}).get("translation") != translation_record(language)


@dataclass(frozen=True)
class Prepared:
    """A video hashed and its audio extracted, ready to transcribe; or a finished bundle to reuse.

    Splitting `process_video` here lets a run of many files extract the next video while the
    current one is transcribed (`batch.run_many`).
    """

    video: Path
    archive: Path
    sha256: str
    audio: ExtractedAudio | None = None
    reused: Path | None = None
    source: Path | None = None  # what the tools read: the archive's read-only copy, or `video` itself

    def discard(self) -> None:
        """Remove the work folder (audio, checkpoints): the bundle is out."""
        discard_work(self.archive, self.sha256)

    def release(self) -> None:
        """A prefetched video that will not be finished in this run: its audio goes, unless an earlier
        interrupted run left decoding progress beside it, which the next run resumes from."""
        drop_audio(work_dir(self.archive, self.sha256))


def discard_work(archive: Path, sha256: str) -> None:
    """The video's work folder goes, and `.work/` itself once no other video has one."""
    work = work_dir(archive, sha256)
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.parent.rmdir()
    except OSError:  # another video's work folder is still there (or it is already gone)
        pass


def drop_audio(work: Path) -> bool:
    """Remove a work folder that holds only extracted audio; one with checkpoints of an interrupted
    run is kept whole (False), WAV included, so the next run resumes instead of starting over."""
    if any(work.glob("*.jsonl")):
        return False
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.parent.rmdir()
    except OSError:
        pass
    return True


Wrap = Callable[[str, Callable], Callable]


def hash_video(video: Path) -> str:
    """The video's identity, taken before any tool reads it."""
    check_readable(video)
    return file_sha256(video)


def transcribe_audio(audio: ExtractedAudio, sha256: str, options: RunOptions, *,
                     progress: bool = False) -> tuple[AsrResult, dict]:
    """`stage_transcribe`, with the video's SHA-256 beside it for whoever caches the result."""
    return stage_transcribe(audio, options, progress=progress)


def translate_segments(language: str, texts: list[str], checkpoint: str | None = None) -> Translation:
    """`translate_english` with the checkpoint named by path (a plain value a cache key can read)."""
    return translate_english(language, texts, checkpoint=Checkpoint(checkpoint) if checkpoint else None)


def publish_bundle(archive: Path, transcript: Transcript, video: Path | None = None) -> Path:
    return write_bundle(archive, transcript, video=video)


class Stages:
    """The stage functions one run calls, by name; `wrap` may decorate each (Prefect makes tasks).

    The order of the stages and what happens between them (custody, reuse, cleanup) is written once,
    in `prepare_video`, `finish_video` and `retranslate`; a wrapper adds retries, caching and task
    boundaries without listing the stages again. Names are the Prefect task names.
    """

    NAMES = {"hash": hash_video, "extract-audio": stage_extract, "transcribe": transcribe_audio,
             "translate": translate_segments, "write-bundle": publish_bundle}

    def __init__(self, wrap: Wrap | None = None) -> None:
        self._stages = {name: (wrap(name, fn) if wrap else fn) for name, fn in self.NAMES.items()}

    def __getitem__(self, name: str) -> Callable:
        return self._stages[name]


PLAIN = Stages()


class _Failure:
    """Logs a failure in custody under the stage that was running, then lets it propagate."""

    def __init__(self, archive: Path, sha256: str, stage: str) -> None:
        self.archive, self.sha256, self.stage = archive, sha256, stage

    def __enter__(self) -> "_Failure":
        return self

    def __exit__(self, kind, exc, _tb) -> bool:
        if exc is not None:
            custody.record_failure(self.archive, self.sha256, self.stage, exc)
        return False


def prepare_video(video: str | Path, archive: str | Path, options: RunOptions = RunOptions(), *,
                  force: bool = False, progress: Progress | None = None, sha256: str | None = None,
                  stages: Stages = PLAIN) -> Prepared:
    """Hash (unless `sha256` is given), look for a reusable bundle, else extract the audio."""
    video, archive = Path(video), Path(archive)
    say = progress or (lambda _msg: None)
    if sha256 is None:
        say("hashing")
        sha256 = stages["hash"](video)
    config.private_dirs(archive)  # the archive root is made owner-only (TESTIMONY_FILE_MODE) first
    custody.record_arrival(archive, sha256, video)
    with _Failure(archive, sha256, "preserve"):
        source = originals.preserve(video, archive, sha256)
    if not force and (existing := reusable_bundle(archive, sha256, options)):
        custody.record_unlogged_publish(archive, sha256, existing)
        custody.append(archive, sha256, "reused", bundle=existing.name, options_key=options.key())
        discard_work(archive, sha256)  # left by a run killed after publishing
        return Prepared(video, archive, sha256, reused=existing, source=source)
    try:
        with _Failure(archive, sha256, "extract"):
            audio = _extract(video, source, archive, sha256, options, say, stages)
    except BaseException:
        drop_audio(work_dir(archive, sha256))
        raise
    return Prepared(video, archive, sha256, audio, source=source)


def _extract(video: Path, source: Path, archive: Path, sha256: str, options: RunOptions, say: Progress,
             stages: Stages) -> ExtractedAudio:
    """A killed run's finished WAV (hash checked), else ffmpeg on the archive's copy of the original."""
    if (audio := finished_extract(work_dir(archive, sha256), options.audio_track)) is not None:
        custody.append(archive, sha256, "resume", stage="extract", wav=audio.wav_path.name)
        return audio
    say("extracting audio")
    try:
        audio = stages["extract-audio"](source, archive, sha256, options.audio_track)
    except BadInputError as exc:  # about the archive's copy: name the file the user gave
        raise originals.named_as_received(exc, source, video) from None
    custody.record_extract(archive, sha256, audio, wav_sha256=wav_sha256(audio))
    return audio


def finish_video(job: Prepared, options: RunOptions = RunOptions(), *,
                 progress: Progress | None = None, stages: Stages = PLAIN) -> RunResult:
    """Transcribe, translate and publish a prepared video's bundle; its work folder goes once it is out.

    On failure the work folder stays, so the next run resumes from the last finished chunk or batch.
    """
    if job.reused is not None:
        return RunResult(job.video, job.reused, "reused")
    say = progress or (lambda _msg: None)
    with _Failure(job.archive, job.sha256, "transcribe"):
        record_transcribe_resume(job.archive, job.sha256, job.audio, options)
        say("transcribing")
        asr, model_info = stages["transcribe"](job.audio, job.sha256, options, progress=progress is not None)
        custody.record_transcribe(job.archive, job.sha256, model_info, asr.language, len(asr.segments))
        transcript = build_transcript(job.video, job.sha256, job.audio, asr, model_info, options,
                                      source=job.source)
    if options.translate:
        say("translating")
        translate_transcript(job.archive, transcript, stages)
    say("writing bundle")
    bundle = publish_transcript(job.archive, transcript, job.source or job.video, stages)
    job.discard()  # the bundle is out: extracted witness audio and checkpoints go
    return RunResult(job.video, bundle, "done", list(transcript.warnings) + catalog.index_or_warn(job.archive, bundle))


def translate_transcript(archive: Path, transcript: Transcript, stages: Stages = PLAIN) -> Transcript:
    """English for every segment, checkpointed in the work folder, logged in custody."""
    if not transcript.needs_translation or not transcript.segments:
        return transcript
    sha256 = transcript.source.sha256
    with _Failure(archive, sha256, "translate"):
        checkpoint = work_dir(archive, sha256) / "translate.jsonl"
        config.private_dirs(checkpoint.parent)
        texts = [s.text for s in transcript.segments]
        apply_translation(transcript, stages["translate"](transcript.language, texts, str(checkpoint)))
        custody.record_translate(archive, sha256, transcript.models.get("translation"),
                                 sum(s.translation is not None for s in transcript.segments))
    return transcript


def publish_transcript(archive: Path, transcript: Transcript, video: Path | None = None,
                       stages: Stages = PLAIN) -> Path:
    """Write the bundle and log its manifest's hash in custody, so `verify` knows it as published."""
    sha256 = transcript.source.sha256
    with _Failure(archive, sha256, "publish"):
        bundle = Path(stages["write-bundle"](archive, transcript, video))
        custody.record_publish(archive, sha256, bundle)
    return bundle


def process_video(video: str | Path, archive: str | Path, options: RunOptions = RunOptions(), *,
                  force: bool = False, progress: Progress | None = None, stages: Stages = PLAIN) -> RunResult:
    """Hash, extract, transcribe, translate and publish one video's bundle."""
    job = prepare_video(video, archive, options, force=force, progress=progress, stages=stages)
    return finish_video(job, options, progress=progress, stages=stages)


def retranslate(archive: str | Path, reference: str, *, stages: Stages = PLAIN) -> RunResult:
    """Translate a published transcript again (after a package was imported); its ASR is kept.

    The new bundle is published and logged exactly as a run's, so `verify` accepts it.
    """
    archive = config.private_dirs(archive)
    entry = catalog.resolve(archive, reference)
    transcript = Transcript.load(archive / entry.bundle / TRANSCRIPT)
    for seg in transcript.segments:
        seg.translation = None
    transcript.warnings = [w for w in transcript.warnings if "no Argos package" not in w]
    translate_transcript(archive, transcript, stages)
    bundle = publish_transcript(archive, transcript, None, stages)
    discard_work(archive, transcript.source.sha256)
    video = Path(transcript.source.file_name)
    return RunResult(video, bundle, "done", list(transcript.warnings) + catalog.index_or_warn(archive, bundle))
