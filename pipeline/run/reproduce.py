"""`testimony verify --reproduce`: re-derive a transcript from the archive's kept original.

Evidence must be checkable by anyone: the same original, options and model weights give the same
segments (fallback sampling is seeded per chunk, see `asr.chunk_seed`). This re-extracts the audio
and decodes it again with the models and options the transcript records, then compares segment by
segment what the machine made (text, times, words, confidence, speaker; never the translation or a flag
a reviewer may add). A transcript whose speakers were found has them found again, with the encoder and
count it records, and its segments split as the run split them. Scratch files live in the archive's
work folder and go afterwards.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pipeline.archive import originals
from pipeline.asr.core import AsrOptions
from pipeline.errors import TestimonyError
from pipeline.run.process import RunOptions, stage_extract, stage_transcribe
from pipeline.stages.glossary import GLOSSARY_MATCH
from pipeline.store import archive_models
from pipeline.transcript import UNTRANSLATED, Segment, Transcript

LATER_FLAGS = {UNTRANSLATED, GLOSSARY_MATCH}  # set after decoding (translation, glossary), not by the ASR

MACHINE_FIELDS = ("start", "end", "text", "avg_logprob", "no_speech_prob", "compression_ratio", "words",
                  "temperature", "speaker")


def recorded_options(transcript: Transcript, archive: Path | None = None) -> RunOptions:
    """The options the transcript's ASR ran with (the routed model's, when a route chose one). A model
    adapted on the archive's witnesses was named by its file in the archive's `.models/`: an archive
    since moved or restored elsewhere finds it in its own `.models/` (the SHA-256 is compared after)."""
    recorded = dict(transcript.models.get("asr", {}).get("options") or {})
    if not recorded:
        raise TestimonyError(f"{transcript.id}: the transcript records no ASR options to reproduce it with")
    recorded["temperatures"] = tuple(recorded.get("temperatures") or (0.0,))
    fields = {k: v for k, v in recorded.items() if k in AsrOptions.__dataclass_fields__}
    model = Path(str(fields.get("model") or ""))
    if archive is not None and model.parent.name == archive_models.MODELS and not model.is_file():
        fields["model"] = str(archive_models.model_path(archive, model.stem))
    return RunOptions(asr=AsrOptions(**fields), translate=False, follow_routes=False)


def reproduce(archive: str | Path, bundle: str | Path, original: str | Path | None = None) -> list[str]:
    """Problems found re-deriving `bundle`'s segments; empty when every segment matches."""
    archive, bundle = Path(archive), Path(bundle)
    transcript = Transcript.load(bundle / "transcript.json")
    source = Path(original) if original else originals.find_kept(archive, transcript.source.sha256)
    if source is None or not source.is_file():
        raise TestimonyError(f"{bundle.name}: no kept original to reproduce from; pass --original PATH")
    options = recorded_options(transcript, archive)
    scratch = archive / ".work" / f"reproduce-{transcript.id}-{os.getpid()}"
    try:
        audio = stage_extract(source, scratch, transcript.source.sha256, None)
        asr, model_info = stage_transcribe(audio, options)
        segments, speaker_problems = _with_speakers(transcript, audio, asr.segments, bundle.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.parent.rmdir()  # .work/ itself, unless a run is using it
        except OSError:
            pass
    problems = _model_problems(transcript.models.get("asr", {}), model_info, bundle.name) + speaker_problems
    from pipeline.review import revisions  # a reviewed transcript is reproduced as the machine drafted it

    draft = revisions.chain(bundle)[0].segments
    return problems + compare_segments(transcript, [asdict(s) for s in segments], bundle.name, draft)


def _with_speakers(transcript: Transcript, audio: Any, segments: list[Segment],
                   name: str) -> tuple[list[Segment], list[str]]:
    """`segments` labelled and split as the run did it, when it found speakers; and any encoder mismatch."""
    recorded = transcript.models.get("speakers")
    if not recorded:
        return segments, []
    from pipeline.run.steps import diarize_audio
    from pipeline.speakers.assign import apply_speakers
    from pipeline.speakers.choice import DEFAULT

    encoder = DEFAULT if recorded.get("name") == DEFAULT else recorded.get("path", "")
    found = diarize_audio(audio, transcript.source.sha256,
                          RunOptions(speakers=recorded.get("speakers"), speaker_encoder=encoder))
    draft = apply_speakers(replace(transcript, segments=segments, models={}), found.turns, found.record)
    return draft.segments, _model_problems(recorded, found.record, name)


def _model_problems(recorded: dict[str, Any], now: dict[str, Any], name: str) -> list[str]:
    if recorded.get("sha256") and now.get("sha256") and recorded["sha256"] != now["sha256"]:
        return [f"{name}: model {recorded.get('name')} is not the one recorded "
                f"(sha256 {now['sha256'][:12]}, recorded {recorded['sha256'][:12]})"]
    return []


def compare_segments(transcript: Transcript, derived: list[dict], name: str,
                     recorded: list[dict] | None = None) -> list[str]:
    """One line per segment that differs, saying which fields and how.

    `recorded` is the machine's draft when a person has revised the transcript since (revision 0);
    by default the transcript's own segments.
    """
    recorded = recorded if recorded is not None else [asdict(s) for s in transcript.segments]
    problems = []
    for n in range(max(len(recorded), len(derived))):
        if n >= len(recorded) or n >= len(derived):
            which = "only re-derived" if n >= len(recorded) else "only recorded"
            text = (derived[n] if n >= len(recorded) else recorded[n])["text"]
            problems.append(f"{name}: segment {n} {which}: {text!r}")
            continue
        diff = _diff(recorded[n], derived[n])
        if diff:
            problems.append(f"{name}: segment {n} differs in {diff}")
    return problems


def _diff(recorded: dict, derived: dict) -> str:
    fields = [f for f in MACHINE_FIELDS if recorded.get(f) != derived.get(f)]
    if set(recorded.get("flags", [])) - LATER_FLAGS != set(derived.get("flags", [])):
        fields.append("flags")
    shown = []
    for field in fields:
        if field == "text":
            shown.append(f"text (recorded {recorded['text']!r}, re-derived {derived['text']!r})")
        else:
            shown.append(field)
    return ", ".join(shown)
