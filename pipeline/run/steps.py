"""The stages of one video as plain functions, and `Stages`, the table of them a run calls by name.

Each stage does one thing to one video (hash, extract, transcribe, find speakers, translate, write the bundle) and
knows nothing of custody or reuse: `run.process` puts them in order. The work folder, where derived
files live until the bundle is out, is defined here too.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pipeline import __version__, atomic, config
from pipeline.archive import custody
from pipeline.archive.bundle import write_bundle
from pipeline.asr.core import AsrOptions, AsrResult
from pipeline.asr.engine import engine_for
from pipeline.hashing import file_sha256
from pipeline.names import display_name
from pipeline.run.options import RunOptions
from pipeline.speakers.diarize import Diarization
from pipeline.stages.audio_source import WavAudio
from pipeline.stages.checkpoint import Checkpoint
from pipeline.stages.media import AudioStream, ExtractedAudio, check_readable, extract_audio, ffmpeg_version, probe
from pipeline.transcript import TRUNCATED, UNTRANSLATED, Source, Transcript


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

    route = route_for(language, options.archive)
    engine = route.engine or options.asr.engine
    if not route.asr_model or (route.asr_model, engine) == (options.asr.model, options.asr.engine):
        return None
    return replace(options.asr, model=route.asr_model, language=language, engine=engine,
                   whisper_token=route.whisper_token or None)


def stage_transcribe(audio: ExtractedAudio, options: RunOptions, *, progress: bool = False) -> tuple[AsrResult, dict]:
    engine = engine_for(options.asr.engine)
    device = engine.device(options.device)
    model, record = engine.load(options.asr.model, device)
    used = {"record": record, "options": options.asr, "model": model}

    def reroute(language: str):
        """The detected language's route, when it wants another model (or engine) than the one that
        detected it."""
        asr = _routed_options(options, language)
        if asr is None:
            return None
        routed = engine_for(asr.engine)
        used["model"], used["record"] = routed.load(asr.model, routed.device(options.device))
        used["options"] = asr
        return used["model"], asr

    result = engine.transcribe(model, WavAudio(audio.wav_path), options.asr, progress=progress, reroute=reroute,
                               checkpoint=asr_checkpoint(audio, options, record.sha256))
    model_info = {**engine_for(used["options"].engine).facts(used["model"]), **used["record"].to_dict(),
                  "whisper_token": result.whisper_token, "options": used["options"].to_dict()}
    return result, model_info


@dataclass(frozen=True)
class Translation:
    """English per segment (None when no package covers the language) and how it was made."""

    english: list[str] | None
    route: dict[str, Any] | None
    warning: str | None = None
    spellings: list[list[dict[str, str]]] | None = None  # per segment: the glossary's spellings kept, and how


TRANSLATE_BATCH = 32  # segments per checkpointed batch; fixed, so a resumed run batches alike


def translation_route(language: str) -> tuple[str | None, Any]:
    """(pivot, TranslatorInfo or the MissingTranslation) for `language` -> English as installed now.

    The pivot is the language route's `translate_via`; reuse checks and cache keys compare this, so
    a newly installed package or a changed pivot makes the old translation stale.
    """
    from pipeline.stages.translate import MissingTranslation, find_translator
    from pipeline.store.routes import route_for

    route = route_for(language)
    via = route.translate_via or None  # a route may pin the pivot (e.g. through Russian)
    try:
        return via, find_translator(language, "en", via=via, model=route.translate or None)
    except MissingTranslation as exc:
        return via, exc


def translation_record(language: str) -> dict[str, Any] | None:
    """What a transcript translated now would record as `models.translation` (None: no package)."""
    _via, info = translation_route(language)
    return None if isinstance(info, Exception) else {"engine": "argostranslate", **asdict(info)}


def translate_english(language: str, texts: list[str], *, checkpoint: Checkpoint | None = None,
                      spellings: dict[str, str] | None = None) -> Translation:
    """English for each text, batch by batch; batches already in `checkpoint` are not translated again.
    `spellings` (the glossary's name -> English spelling) are kept in the English (`stages.spellings`)."""
    from pipeline.stages.translate import translate_keeping
    from pipeline.store.routes import route_for

    via, info = translation_route(language)
    if isinstance(info, Exception):
        return Translation(None, None, str(info))
    checkpoint = checkpoint or Checkpoint(None)
    key = hashlib.sha256(json.dumps([language, via, texts, asdict(info)] + ([spellings] if spellings else []))
                         .encode()).hexdigest()
    english: list[str] = []
    kept: list[list[dict[str, str]]] = []
    for batch in checkpoint.find("batch"):
        if batch["key"] == key and batch["start"] == len(english):
            english += batch["english"]
            kept += batch.get("spellings") or [[] for _ in batch["english"]]
    for start in range(len(english), len(texts), TRANSLATE_BATCH):
        done, notes = translate_keeping(texts[start:start + TRANSLATE_BATCH], language, "en", english=spellings,
                                        via=via, model=route_for(language).translate or None)
        checkpoint.add("batch", key=key, start=start, english=done, **({"spellings": notes} if spellings else {}))
        english += done
        kept += notes
    return Translation(english, {"engine": "argostranslate", **asdict(info)},
                       spellings=kept if spellings else None)


def apply_translation(transcript: Transcript, translation: Translation) -> Transcript:
    """A missing package leaves the segments flagged `untranslated`, never lost."""
    transcript.models["translation"] = translation.route
    for n, seg in enumerate(transcript.segments):
        seg.translation = translation.english[n] if translation.english is not None else None
        seg.spellings = (translation.spellings[n] or None) if translation.spellings else None
        seg.english_source = "machine" if seg.translation is not None else None
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
    spellings = (transcript.glossary or {}).get("english") or None
    return apply_translation(transcript, translate_english(transcript.language, texts, checkpoint=checkpoint,
                                                           spellings=spellings))


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
    if asr.unprompted_chunks:
        transcript.warnings.append(f"the glossary prompt leaked into the text of {asr.unprompted_chunks} chunk(s) "
                                   "(names copied or repeated): those were decoded again without it")
    if asr.detected_language and (warning := routing_warning(asr.detected_language, options.archive)):
        transcript.warnings.append(warning)
    elif asr.first_choice and (warning := routing_warning(asr.first_choice, options.archive)):  # `--expect` chose
        transcript.warnings.append(f"{warning} (picked {asr.detected_language!r} among the expected languages "
                                   f"{', '.join(options.asr.expect or ())}: Whisper's first choice was "
                                   f"{asr.first_choice!r})")
    return transcript


# Languages Whisper answers for speech of a routed language it has no class for, or often confuses
# with it: Uyghur comes out as Uzbek, Turkish, Arabic or Persian; Kazakh sometimes as Kyrgyz or Tatar.
NEIGHBOURS = {"ug": ("uz", "tr", "ar", "fa", "ky", "az", "tk", "ur"), "kk": ("ky", "tt", "ba", "uz")}
UNDETECTABLE = ("ug",)  # no Whisper class: its speech can come out as any language (espeak's as Thai)


def routing_warning(detected: str, archive: str | None = None) -> str | None:
    """Say so when detection answered a language this archive has no route for, next to one it has,
    or any unrouted language while the archive has a model for one Whisper cannot detect."""
    from pipeline.store.routes import load_routes

    routes = load_routes(archive)
    if detected in routes:
        return None
    close = [code for code, near in NEIGHBOURS.items() if detected in near and code in routes]
    close += [code for code in UNDETECTABLE if code not in close and code in routes and routes[code].asr_model]
    if not close:
        return None
    names = " or ".join(f"{routes[c].name or c} (drop it into inbox/{c}/, or run with --language {c})"
                        for c in close)
    return (f"the language was detected as {detected!r}, which this archive has no route for; Whisper "
            f"cannot detect Uyghur and confuses neighbours. If the speech is {names}, run it again that way; "
            f"or put a sidecar beside the video (its file name plus .json) saying {{\"language\": \"{close[0]}\"}}")


def discard_work(archive: Path, sha256: str) -> None:
    """The video's work folder goes, and `.work/` itself once no other video has one."""
    _remove_work(work_dir(archive, sha256))


def drop_audio(work: Path) -> bool:
    """Remove a work folder that holds only extracted audio; one with checkpoints of an interrupted
    run is kept whole (False), WAV included, so the next run resumes instead of starting over."""
    if any(work.glob("*.jsonl")):
        return False
    _remove_work(work)
    return True


def _remove_work(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.parent.rmdir()
    except OSError:  # another video's work folder is still there (or it is already gone)
        pass


Wrap = Callable[[str, Callable], Callable]


def hash_video(video: Path) -> str:
    """The video's identity, taken before any tool reads it."""
    check_readable(video)
    return file_sha256(video)


def transcribe_audio(audio: ExtractedAudio, sha256: str, options: RunOptions, *,
                     progress: bool = False) -> tuple[AsrResult, dict]:
    """`stage_transcribe`, with the video's SHA-256 beside it for whoever caches the result."""
    return stage_transcribe(audio, options, progress=progress)


def diarize_audio(audio: ExtractedAudio, sha256: str, options: RunOptions) -> Diarization:
    """Who speaks when in the extracted WAV (`pipeline.speakers`); the SHA-256 is for whoever caches it."""
    from pipeline.speakers.choice import encoder_for
    from pipeline.speakers.diarize import diarize

    return diarize(WavAudio(audio.wav_path), encoder_for(options.speaker_encoder), options.speakers)


def translate_segments(language: str, texts: list[str], checkpoint: str | None = None,
                       spellings: dict[str, str] | None = None) -> Translation:
    """`translate_english` with the checkpoint named by path (a plain value a cache key can read)."""
    return translate_english(language, texts, checkpoint=Checkpoint(checkpoint) if checkpoint else None,
                             spellings=spellings)


def publish_bundle(archive: Path, transcript: Transcript, video: Path | None = None) -> Path:
    return write_bundle(archive, transcript, video=video)


class Stages:
    """The stage functions one run calls, by name; `wrap` may decorate each (Prefect makes tasks).

    The order of the stages and what happens between them (custody, reuse, cleanup) is written once,
    in `prepare_video`, `finish_video` and `retranslate`; a wrapper adds retries, caching and task
    boundaries without listing the stages again. Names are the Prefect task names.
    """

    NAMES = {"hash": hash_video, "extract-audio": stage_extract, "transcribe": transcribe_audio,
             "diarize": diarize_audio, "translate": translate_segments, "write-bundle": publish_bundle}

    def __init__(self, wrap: Wrap | None = None) -> None:
        self._stages = {name: (wrap(name, fn) if wrap else fn) for name, fn in self.NAMES.items()}

    def __getitem__(self, name: str) -> Callable:
        return self._stages[name]


PLAIN = Stages()

