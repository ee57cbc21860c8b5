"""A redacted public bundle of one testimony, and the private record that links it to the original.

The public folder holds the renderings, a viewer and `transcript.json` with every listed name replaced
by `[REDACTED]`, and optionally the video or audio with those words muted. It holds nothing that
leads back to the witness: `transcript.json` is built from an allow-list (`SEGMENT_FIELDS` and the
rest below, README's public schema), never by deleting what is private, so no custody log, original
file name or SHA-256, sidecar, model path, glossary prompt or word list leaves, nor any field the
transcript gains later; the renderings are made from that public JSON alone, and the media has none
of the original's metadata tags. Its id is a hash of the source's
SHA-256 and the list's, so the same export is the same folder, yet nobody without both can link it.

The archive keeps the link: a custody `export` event (kind `redacted`) with the list's SHA-256, the
segments changed, the muted spans and the public manifest's SHA-256; `verify_public` checks a public
folder against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from pipeline import __version__, atomic
from pipeline.archive import custody
from pipeline.archive.bundle import MANIFEST, TRANSCRIPT
from pipeline.archive.formats import renderings
from pipeline.archive.integrity import IntegrityError, verify_bundle
from pipeline.archive.redact import MARK, Redacted, RedactList, redact_transcript
from pipeline.archive.viewer import INDEX, render_page
from pipeline.hashing import file_sha256
from pipeline.stages.media import extract_timeout, ffmpeg_binary, input_options, run_tool
from pipeline.transcript import GLOSSARY_MATCH, Segment, Source, Transcript

SCHEMA = "testimony.public/1"
MEDIA = {"audio": "audio.m4a", "video": "video.mp4"}  # what --media writes, under these plain names
KIND = "redacted"  # the custody export event's kind


@dataclass(frozen=True)
class PublicExport:
    folder: Path
    public_id: str
    changed: list[int]
    muted: list[tuple[float, float]]
    manifest_sha256: str


def public_id(source_sha256: str, list_sha256: str) -> str:
    return hashlib.sha256(f"{source_sha256}:{list_sha256}".encode()).hexdigest()[:12]


# The public schema, `testimony.public/1`: every field that may leave the archive, and why. A field is
# copied only when it is named here, so one the transcript gains later stays private until it is added.
# (README, "Publishing a redacted copy", gives the same list.)
SEGMENT_FIELDS = {
    "id": "the segment's number, which the viewer's links and the renderings follow",
    "start": "where in the recording it is said (seconds)", "end": "where it ends (seconds)",
    "text": "what was said, redacted", "translation": "its English, redacted",
    "speaker": "who speaks: a label (S1) or a name, redacted",
    "checked": "whether a person who speaks the language checked it",
    "english_source": "machine, edited or written: who made the English",
}
# `flags` is built, not copied: the flags standing after review, without glossary_match (its
# suggestions spell names).
ASR_FIELDS = {"engine": "which decoder", "engine_version": "its version", "name": "the model's name"}
TRANSLATION_FIELDS = {"engine": "which translator", "route": "its languages, e.g. kk → en"}
TRANSCRIPT_FLAGS = ("truncated",)  # a reader must know when the text stops before the recording does


def _picked(value: Any, fields: Any) -> dict[str, Any]:
    """The named fields of `value` (a dict, or nothing), and only those."""
    value = value if isinstance(value, dict) else {}
    return {k: value[k] for k in fields if k in value}


def _public_models(models: dict[str, Any]) -> dict[str, Any]:
    """Which engines made the text: names and versions, never paths, hashes, options or the prompt
    (the prompt is the glossary: the team's list of names)."""
    return {"asr": _picked(models.get("asr"), ASR_FIELDS),
            "translation": _picked(models.get("translation"), TRANSLATION_FIELDS) or None,
            "testimony": models.get("testimony")}


def _public_segment(seg: Segment) -> dict[str, Any]:
    data = {k: getattr(seg, k) for k in SEGMENT_FIELDS}
    return {**data, "flags": [f for f in seg.standing_flags() if f != GLOSSARY_MATCH]}


def public_json(redacted: Redacted, pid: str) -> dict[str, Any]:
    """The public transcript, built field by field from the schema above: nothing identifies the source."""
    t = redacted.transcript
    return {"schema": SCHEMA, "public_id": pid, "title": f"Testimony {pid}", "language": t.language,
            "detected_language": t.detected_language, "language_probability": t.language_probability,
            "source": {"duration": t.source.duration}, "models": _public_models(t.models),
            "flags": [f for f in t.flags if f in TRANSCRIPT_FLAGS],
            "redaction": {"mark": MARK, "segments_changed": len(redacted.changed)},
            "speaker_names": dict(t.speaker_names or {}), "segments": [_public_segment(s) for s in t.segments]}


def public_transcript(data: dict[str, Any]) -> Transcript:
    """The public JSON as a Transcript, for the renderings: they see the public fields and nothing else."""
    segments = [Segment(**{k: seg[k] for k in SEGMENT_FIELDS}, flags=list(seg["flags"])) for seg in data["segments"]]
    return Transcript(Source("", "", 0, data["source"]["duration"], {}), data["language"], data["detected_language"],
                      data["language_probability"], {}, segments, flags=list(data["flags"]),
                      speaker_names=data["speaker_names"])


def mute_filter(spans: list[tuple[float, float]]) -> str:
    """An ffmpeg audio filter that silences `spans` (seconds) and passes the rest unchanged.

    The expression is quoted for ffmpeg's filter parser (its commas would otherwise split filters),
    so it goes in as `-af` text rather than through ffmpeg-python's filter nodes, which do not quote.
    """
    if not spans:
        return "anull"
    enable = "+".join(f"between(t,{start:.3f},{end:.3f})" for start, end in spans)
    return f"volume=enable='{enable}':volume=0"


def write_media(original: Path, dest: Path, kind: str, spans: list[tuple[float, float]],
                duration: float | None = None) -> None:
    """The original's first audio (and, for `video`, video) stream with `spans` muted and no metadata.

    Global, stream and chapter tags are dropped: a title or comment tag can name the witness.
    """
    source = ffmpeg.input(str(original), **input_options())
    streams = [source["v:0"], source["a:0"]] if kind == "video" else [source["a:0"]]
    args = {"af": mute_filter(spans), "acodec": "aac", "audio_bitrate": "128k", "map_metadata": "-1",
            "map_chapters": "-1", "fflags": "+bitexact", "metadata:s:a:0": "language=und"}
    if kind == "video":
        args["vcodec"] = "copy"
    cmd = ffmpeg.output(*streams, str(dest), **args).global_args("-nostdin", "-hide_banner", "-loglevel", "error") \
        .overwrite_output().compile(cmd=ffmpeg_binary())
    timeout = extract_timeout(duration, original.stat().st_size)
    done = run_tool(cmd, original, timeout, f"ffmpeg (writing the public {kind})")
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()[-400:]
        raise IntegrityError(f"ffmpeg could not write the public {kind} ({detail}); the archive is unchanged")


def _files(redacted: Redacted, pid: str, media: str | None) -> dict[str, str]:
    data = public_json(redacted, pid)
    href = MEDIA[media] if media else None
    return {TRANSCRIPT: json.dumps(data, ensure_ascii=False, indent=2) + "\n", **renderings(public_transcript(data)),
            INDEX: render_page(data, href, None, data["title"])}


def _stage(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        atomic.write_text(folder / name, text, mode=0o644)


def export_public(archive: str | Path, bundle: str | Path, dest: str | Path, redact: RedactList, *,
                  media: str | None = None) -> PublicExport:
    """Write the public folder `dest` (which must not exist) from a verified bundle; log it in custody."""
    archive, bundle, dest = Path(archive), Path(bundle), Path(dest)
    if dest.exists():
        raise IntegrityError(f"{dest} already exists: choose another folder or remove it first")
    report = verify_bundle(archive, bundle)
    if not report.ok or report.sha256 is None:
        raise IntegrityError(f"{bundle.name} does not verify, not exported: " + "; ".join(report.problems))
    sha256 = report.sha256
    if media and report.original is None:  # verify found and re-hashed it, when it can be reached
        raise IntegrityError("the original is needed to write muted media, and neither the archive's copy nor "
                             "its arrival path holds it: restore it, or export without --media")
    redacted = redact_transcript(Transcript.load(bundle / TRANSCRIPT), redact)
    pid = public_id(sha256, redact.sha256)
    staging = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    staging.mkdir(parents=True, mode=0o755)
    try:
        _stage(staging, _files(redacted, pid, media))
        if media:
            write_media(report.original, staging / MEDIA[media], media, redacted.muted,
                        redacted.transcript.source.duration)
        manifest = {"public_id": pid, "files": {p.name: file_sha256(p) for p in sorted(staging.iterdir())}}
        atomic.write_text(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n", mode=0o644)
        atomic.publish(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    done = PublicExport(dest, pid, redacted.changed, redacted.muted, file_sha256(dest / MANIFEST))
    _record(archive, sha256, bundle, redact, done, media)
    return done


def _record(archive: Path, sha256: str, bundle: Path, redact: RedactList, done: PublicExport,
            media: str | None) -> None:
    """The private half of the link: what was removed, from which list, and which public folder it made."""
    custody.append(archive, sha256, "export", kind=KIND, tool="testimony", version=__version__,
                   bundle=bundle.name, path=str(done.folder.resolve()), public_id=done.public_id,
                   redact_list_sha256=redact.sha256, changed_segments=done.changed,
                   muted=[[round(s, 3), round(e, 3)] for s, e in done.muted], media=media,
                   public_manifest_sha256=done.manifest_sha256, transcript_sha256=file_sha256(bundle / TRANSCRIPT))


def public_records(archive: str | Path, sha256: str) -> list[dict[str, Any]]:
    """The redacted exports custody logged for this video, oldest first."""
    return [e for e in custody.read(archive, sha256) if e.get("event") == "export" and e.get("kind") == KIND]


def verify_public(archive: str | Path, sha256: str, folder: str | Path) -> list[str]:
    """Problems of a public folder: its files against its manifest, and its manifest against the record."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{folder}/{MANIFEST}: unreadable ({exc})"]
    problems = [f"{folder.name}/{name}: changed or missing" for name, digest in sorted(listed.items())
                if not (folder / name).is_file() or file_sha256(folder / name) != digest]
    problems += [f"{folder.name}/{p.name}: extra file, not in the manifest" for p in sorted(folder.iterdir())
                 if p.name not in listed and p.name != MANIFEST]
    digest = file_sha256(folder / MANIFEST)
    if not any(r.get("public_manifest_sha256") == digest for r in public_records(archive, sha256)):
        problems.append(f"{folder.name}/{MANIFEST}: no redacted export of this video in the archive's custody "
                        "log has this manifest")
    problems += [f"custody: {p}" for p in custody.check_chain(archive, sha256)]
    return problems
