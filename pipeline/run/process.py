"""The one orchestration of a video's stages that every entry point calls.

`testimony run`, the Prefect flows (`process-video`, `inbox`, `process-folder`, `retranslate`) and
`eval` call `prepare_video`/`finish_video`/`retranslate`; what happens between stages (custody,
archive permissions, reuse, cleanup) is written here once. The stages themselves are in
`run.steps`; a caller may hand them in wrapped (`Stages`), as Prefect does to make tasks.

Resumable: the work folder keeps the extracted WAV with a record of it, and checkpoints of decoded
chunks and translated batches. A run killed at any point is picked up by the next run of the same
video and options from the last finished piece; the folder goes once the bundle is out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from pipeline import config
from pipeline.archive import catalog, custody, originals
from pipeline.archive.bundle import TRANSCRIPT, find_bundle, refuse_if_reviewed, reviewed
from pipeline.archive.locks import VideoLock, bundle_lock, work_lock
from pipeline.asr.prompt import glossary_prompt
from pipeline.errors import BadInputError
from pipeline.run.options import RunOptions
from pipeline.run.sidecar import Sidecar, read_sidecar
from pipeline.run.sidecar import apply as apply_sidecar
from pipeline.run.steps import (
    PLAIN,
    Stages,
    Translation,
    apply_translation,
    build_transcript,
    discard_work,
    drop_audio,
    finished_extract,
    record_transcribe_resume,
    stage_extract,
    stage_transcribe,
    stage_translate,
    translate_english,
    translation_record,
    wav_sha256,
    work_dir,
)
from pipeline.speakers.assign import apply_speakers
from pipeline.stages import glossary
from pipeline.stages.media import ExtractedAudio, pick_audio_stream, probe
from pipeline.transcript import Transcript, read_json

__all__ = ["PLAIN", "Prepared", "RunOptions", "RunResult", "Stages", "Translation", "apply_translation",
           "build_transcript", "finish_video", "prepare_video", "process_video", "retranslate",
           "reusable_bundle", "stage_extract", "stage_transcribe", "stage_translate", "translate_english",
           "translation_record", "wav_sha256", "work_dir"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    video: Path
    bundle: Path
    status: str  # "done" or "reused"
    warnings: list[str] = field(default_factory=list)


def reusable_bundle(archive: Path, sha256: str, options: RunOptions,
                    names: glossary.Glossary | None = None) -> Path | None:
    """A finished bundle for the same video made with the same options (and the glossary's English
    spellings, which its translation kept)."""
    bundle = find_bundle(archive, sha256)
    if bundle is None:
        return None
    try:
        data = read_json(bundle / TRANSCRIPT)
    except (OSError, ValueError):
        return None
    if data.get("models", {}).get("options_key") != options.key():
        return None
    stale = _translation_stale(data) or _spellings_stale(data, names)
    if options.translate and stale and not reviewed(bundle):
        return None  # a package installed since, another pivot or spelling: translate now instead of reusing
    return bundle


def _translation_stale(data: dict) -> bool:
    """Whether translating now would use another route than the bundle's (or one where it had none)."""
    language = data.get("language")
    if language in (None, "en") or not data.get("segments"):
        return False
    return (data.get("models") or {}).get("translation") != translation_record(language)


def _spellings_stale(data: dict, names: glossary.Glossary | None) -> bool:
    """Whether the glossary now gives other English spellings than the bundle's translation kept."""
    if data.get("language") in (None, "en") or not data.get("segments"):
        return False
    return ((data.get("glossary") or {}).get("english") or {}) != (dict(names.english) if names else {})


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
    options: RunOptions | None = None  # the run's options with the sidecar's language, when it gave one
    sidecar: Sidecar | None = None
    glossary: glossary.Glossary | None = None  # the archive's, the run's and the sidecar's names
    lock: VideoLock | None = None  # the video's work lock, held from prepare until finished or released

    def discard(self) -> None:
        """Remove the work folder (audio, checkpoints): the bundle is out."""
        discard_work(self.archive, self.sha256)

    def release(self) -> None:
        """A prefetched video that will not be finished in this run: its audio goes, unless an earlier
        interrupted run left decoding progress beside it, which the next run resumes from."""
        try:
            drop_audio(work_dir(self.archive, self.sha256))
        finally:
            self.unlock()

    def unlock(self) -> None:
        """Let the next run of this video (waiting in `prepare_video`) go on."""
        if self.lock is not None:
            self.lock.release()


def steered(options: RunOptions, names: glossary.Glossary | None) -> RunOptions:
    """The options with the glossary's names as the decoder's prompt, unless the run turned that off.

    The prompt is an ASR option, so it is in the options key: a changed glossary makes a bundle stale.
    """
    if names is None or not options.glossary_prompt:
        return options
    return replace(options, asr=replace(options.asr, prompt=glossary_prompt(names.entries)))


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
    """Read the sidecar, probe, hash (unless `sha256` is given), look for a reusable bundle, else extract
    the audio.

    A broken sidecar stops here, before anything is written: the video waits until it is fixed. So does
    a file ffprobe cannot read (or that hangs it) or one without the audio asked for: what is not media
    is never copied into `originals/`.
    """
    video, archive = Path(video), Path(archive)
    say = progress or (lambda _msg: None)
    notes = read_sidecar(video)
    names = glossary.load(archive, options.glossary, notes.content.get("glossary") if notes else None)
    options = steered(apply_sidecar(options, notes), names)
    pick_audio_stream(probe(video), options.audio_track)  # no sound to transcribe: refused, not kept
    if sha256 is None:
        say("hashing")
        sha256 = stages["hash"](video)
    config.private_dirs(archive)  # the archive root is made owner-only (TESTIMONY_FILE_MODE) first
    lock = work_lock(archive, sha256)  # held until the bundle is out: one run of a video at a time
    lock.acquire_or_wait(say, "another run of this video is in progress; this one goes on when it is done "
                              "(and reuses its bundle)")
    try:
        job = _prepare_locked(video, archive, sha256, options, notes, names, force=force, say=say, stages=stages)
    except BaseException:
        lock.release()
        raise
    if job.reused is not None:
        lock.release()
        return job
    return replace(job, lock=lock)


def _prepare_locked(video: Path, archive: Path, sha256: str, options: RunOptions, notes: Sidecar | None,
                    names: glossary.Glossary | None, *, force: bool, say: Progress, stages: Stages) -> Prepared:
    """`prepare_video` once the video's work lock is held: no other run shares its work folder."""
    custody.record_arrival(archive, sha256, video)
    if notes is not None:
        custody.append(archive, sha256, "stage", name="sidecar", tool="testimony", file_name=notes.path.name,
                       sidecar_sha256=notes.sha256, content=notes.content)
    with _Failure(archive, sha256, "preserve"):
        source = originals.preserve(video, archive, sha256)
    with bundle_lock(archive, sha256):  # not between a save's retiring of the old bundle and its rename
        if not force and (existing := reusable_bundle(archive, sha256, options, names)):
            custody.record_unlogged_publish(archive, sha256, existing)
            custody.append(archive, sha256, "reused", bundle=existing.name, options_key=options.key())
            discard_work(archive, sha256)  # left by a run killed after publishing
            return Prepared(video, archive, sha256, reused=existing, source=source, options=options,
                            sidecar=notes, glossary=names)
        if previous := find_bundle(archive, sha256):
            with _Failure(archive, sha256, "publish"):
                refuse_if_reviewed(previous)  # before any work: a person's corrections are never replaced
    try:
        with _Failure(archive, sha256, "extract"):
            audio = _extract(video, source, archive, sha256, options, say, stages)
    except BaseException:
        drop_audio(work_dir(archive, sha256))
        raise
    return Prepared(video, archive, sha256, audio, source=source, options=options, sidecar=notes, glossary=names)


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
    """Transcribe, find who speaks, translate and publish a prepared video's bundle; its work folder goes
    once it is out.

    On failure the work folder stays, so the next run resumes from the last finished chunk or batch.
    """
    if job.reused is not None:
        return RunResult(job.video, job.reused, "reused")
    try:
        return _finish_locked(job, job.options or options, progress, stages)
    finally:
        job.unlock()


def _finish_locked(job: Prepared, options: RunOptions, progress: Progress | None, stages: Stages) -> RunResult:
    """`finish_video` while the job holds the video's work lock."""
    say = progress or (lambda _msg: None)
    with _Failure(job.archive, job.sha256, "transcribe"):
        record_transcribe_resume(job.archive, job.sha256, job.audio, options)
        say("transcribing")
        asr, model_info = stages["transcribe"](job.audio, job.sha256, options, progress=progress is not None)
        custody.record_transcribe(job.archive, job.sha256, model_info, asr.language, len(asr.segments))
        transcript = build_transcript(job.video, job.sha256, job.audio, asr, model_info, options,
                                      source=job.source)
        transcript.sidecar = job.sidecar.record() if job.sidecar else None
    if options.diarize:
        say("finding speakers")
        find_speakers(job, transcript, options, stages)
    transcript.speaker_names = dict(options.speaker_names) or None
    glossary.flag(transcript, job.glossary)  # on the split segments
    if options.translate:
        say("translating")
        translate_transcript(job.archive, transcript, stages)
    say("writing bundle")
    bundle = publish_transcript(job.archive, transcript, job.source or job.video, stages)
    job.discard()  # the bundle is out: extracted witness audio and checkpoints go
    return RunResult(job.video, bundle, "done", list(transcript.warnings) + catalog.index_or_warn(job.archive, bundle))


def find_speakers(job: Prepared, transcript: Transcript, options: RunOptions, stages: Stages = PLAIN) -> None:
    """Label every segment S1, S2, … (split where the speaker changes), logged in custody.

    Not checkpointed: it costs a small fraction of decoding (bench/results-diarization.md), so a resumed
    run does it again.
    """
    with _Failure(job.archive, job.sha256, "diarize"):
        found = stages["diarize"](job.audio, job.sha256, options)
        apply_speakers(transcript, found.turns, found.record)
        custody.append(job.archive, job.sha256, "stage", name="diarize", tool="testimony", model=found.record,
                       speakers=found.record["found"], segments=len(transcript.segments))


def translate_transcript(archive: Path, transcript: Transcript, stages: Stages = PLAIN) -> Transcript:
    """English for every segment, checkpointed in the work folder, logged in custody."""
    if not transcript.needs_translation or not transcript.segments:
        return transcript
    sha256 = transcript.source.sha256
    with _Failure(archive, sha256, "translate"):
        checkpoint = work_dir(archive, sha256) / "translate.jsonl"
        config.private_dirs(checkpoint.parent)
        texts = [s.text for s in transcript.segments]
        spellings = (transcript.glossary or {}).get("english")  # the glossary's `NAME = English` lines
        translated = (stages["translate"](transcript.language, texts, str(checkpoint), spellings) if spellings
                      else stages["translate"](transcript.language, texts, str(checkpoint)))
        apply_translation(transcript, translated)
        custody.record_translate(archive, sha256, transcript.models.get("translation"),
                                 sum(s.translation is not None for s in transcript.segments))
    return transcript


def publish_transcript(archive: Path, transcript: Transcript, video: Path | None = None,
                       stages: Stages = PLAIN) -> Path:
    """Write the bundle and log its manifest's hash in custody, so `verify` knows it as published."""
    sha256 = transcript.source.sha256
    with _Failure(archive, sha256, "publish"), bundle_lock(archive, sha256):  # published and logged as one
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
    with work_lock(archive, entry.sha256):  # its translation checkpoint is in the work folder
        transcript = Transcript.load(archive / entry.bundle / TRANSCRIPT)
        for seg in transcript.segments:
            seg.translation = None
        transcript.warnings = [w for w in transcript.warnings if "no Argos package" not in w]
        translate_transcript(archive, transcript, stages)
        bundle = publish_transcript(archive, transcript, None, stages)
        discard_work(archive, transcript.source.sha256)
    video = Path(transcript.source.file_name)
    return RunResult(video, bundle, "done", list(transcript.warnings) + catalog.index_or_warn(archive, bundle))
