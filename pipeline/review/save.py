"""Saving a reviewed transcript: checked, merged with a concurrent save, published as one new revision.

A save names the revision it was edited from. When another save landed since, the two are merged
segment by segment (`revisions.merge`); segments both changed differently come back as a conflict
and nothing is written. A save is published exactly like a run's bundle (`write_bundle`, one
rename), so a kill leaves the old revision or the new one, never half; custody logs a `revise`
event with the revision's hash and the new manifest's, and the catalog is updated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import failpoints
from pipeline.archive import catalog, custody
from pipeline.archive.bundle import TRANSCRIPT, find_bundle, write_bundle
from pipeline.archive.locks import bundle_lock
from pipeline.review import cuts, revisions
from pipeline.review.revisions import ENGLISH_SOURCES, ReviewError, Revision
from pipeline.transcript import WRITTEN_WHEN_SET, Segment, Transcript, Word, read_json

MAX_TEXT = 20_000  # characters in one field: a whole hour's answer fits; a pasted book does not
MAX_NAME = 200
SLACK = 0.5  # seconds a segment may end past the decoded audio (rounding of the last frame)


class ConflictError(ReviewError):
    """Both saves changed the same segments differently; `conflicts` has both versions of each."""

    def __init__(self, newest: Revision, conflicts: list[dict], merged: list[dict]) -> None:
        self.newest, self.conflicts = newest, conflicts
        self.merged = merged  # the merge with the newest revision's version wherever the two conflict
        super().__init__(f"{len(conflicts)} segment(s) were changed differently in revision {newest.number}, "
                         "saved since this edit began: choose a version of each, then save again")


@dataclass
class Saved:
    revision: Revision
    bundle: Path
    merged: bool = False  # another save landed in between and the two merged cleanly
    unchanged: bool = False  # nothing differed from the newest revision: nothing was written
    warnings: list[str] = field(default_factory=list)


def save_revision(archive: str | Path, sha256: str, *, base: str, author: str, segments: Any,
                  origin: dict[str, str] | None = None) -> Saved:
    """Publish `segments` (the whole list, as the editor holds it) as the next revision of the bundle.
    `origin` says where the text came from when not from the editor (a returned file: its name and
    SHA-256), and goes into the revision's custody event."""
    archive = Path(archive)
    author = _name(author, "author")
    with bundle_lock(archive, sha256):  # write_bundle re-enters it: chain read, merge and publish as one
        bundle = find_bundle(archive, sha256)
        if bundle is None:
            raise ReviewError(f"no bundle for {sha256[:12]} in {archive}")
        custody.record_unlogged_revisions(archive, sha256, bundle)  # a save killed before logging its revision
        newest = revisions.newest(bundle)  # only the files a save needs are read, not the whole chain
        edited_from = newest if newest.sha256 == base else revisions.find(bundle, str(base))
        if edited_from is None:
            raise ReviewError(f"base {str(base)[:16]!r} is not a revision of {bundle.name}: reload the transcript")
        transcript = Transcript.load(bundle / TRANSCRIPT)
        proposed = checked_segments(segments, edited_from.segments, transcript.source.duration)
        merged = edited_from is not newest
        if merged:
            result = revisions.merge(edited_from.segments, newest.segments, proposed)
            if result.conflicts:
                raise ConflictError(newest, result.conflicts, result.segments)
            proposed = result.segments
        changes = revisions.diff(newest.segments, proposed)
        if not changes:
            return Saved(newest, bundle, merged=merged, unchanged=True)
        return _publish(archive, bundle, transcript, newest, proposed, changes, author, edited_from.number, merged,
                        origin)


def _publish(archive: Path, bundle: Path, transcript: Transcript, newest: Revision, segments: list[dict],
             changes: list[dict], author: str, base: int, merged: bool, origin: dict[str, str] | None) -> Saved:
    files = _earlier(bundle, newest)
    number = newest.number + 1
    data = revisions.encode(number, newest.sha256, author, _now(), base, segments, changes)
    files[revisions.file_name(number)] = data
    transcript.segments = [_segment(s) for s in segments]
    failpoints.reached("revise:begin")
    published = write_bundle(archive, transcript, revisions=files)
    revision = revisions.decode(data, revisions.file_name(number))
    custody.record_revise(archive, transcript.source.sha256, published, revision,
                          **({"from_file": origin} if origin else {}))
    return Saved(revision, published, merged=merged, warnings=catalog.index_or_warn(archive, published))


def _earlier(bundle: Path, newest: Revision) -> dict[str, bytes | Path]:
    """The earlier revisions' files as they are on disk (linked into the new bundle, never copied);
    before the first save, revision 0's bytes made from transcript.json."""
    if newest.stored:
        return {f"{revisions.DIR}/{path.name}": path for path in revisions.stored_files(bundle)}
    draft = read_json(bundle / TRANSCRIPT)
    return {revisions.file_name(0): revisions.machine_draft(draft)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise ReviewError(f"{what}: give a name of 1 to {MAX_NAME} characters")
    return " ".join(value.split())


def checked_segments(segments: Any, base: list[dict], duration: float | None) -> list[dict]:
    """The editor's segment list as full segments, each field checked; a ReviewError names the first fault.

    A segment keeps its id, and what a reviewer cannot edit (scores, flags, words) comes from the
    base revision's segment of that id. A new segment (a split) has `"id": null` and may name the
    segment it came from in `split_from`; it gets a fresh id. Where a loop the machine cut off goes
    (split, merge, `restore_cut`, `dismiss_cut`) is `cuts.settle`'s to decide, from the base.
    """
    if not isinstance(segments, list):
        raise ReviewError("segments: expected a list of segments")
    known = {s["id"]: s for s in base}
    next_id = max(known, default=-1) + 1
    seen: set[int] = set()
    out, claims = [], []
    for n, raw in enumerate(segments):
        if not isinstance(raw, dict):
            raise ReviewError(f"segment {n}: expected an object")
        seg_id, origin = raw.get("id"), None
        if seg_id is None:
            seg_id, next_id = next_id, next_id + 1
            origin = known.get(raw.get("split_from")) if isinstance(raw.get("split_from"), int) else None
        elif not isinstance(seg_id, int) or isinstance(seg_id, bool) or seg_id not in known:
            raise ReviewError(f"segment {n}: id {seg_id!r} is not a segment of this revision")
        elif seg_id in seen:
            raise ReviewError(f"segment {n}: id {seg_id} appears twice")
        else:
            origin = known[seg_id]
        seen.add(seg_id)
        out.append(_checked(n, seg_id, raw, origin, duration))
        claims.append(cuts.claim(n, raw, origin["id"] if origin else None))
    cuts.settle(out, claims, known)
    out.sort(key=lambda s: (s["start"], s["id"]))
    return out


def _checked(n: int, seg_id: int, raw: dict, origin: dict | None, duration: float | None) -> dict:
    start, end = _time(n, raw, "start"), _time(n, raw, "end")
    if end <= start:
        raise ReviewError(f"segment {n}: ends at {end} s, not after its start at {start} s")
    if duration is not None and end > duration + SLACK:
        raise ReviewError(f"segment {n}: ends at {end} s, after the recording's end at {duration:.2f} s")
    text = _text(n, raw, "text", required=True)
    translation = _text(n, raw, "translation", required=False)
    speaker = raw.get("speaker")
    if speaker is not None:
        speaker = _name(speaker, f"segment {n}: speaker")
    if not isinstance(raw.get("checked", False), bool):
        raise ReviewError(f"segment {n}: checked must be true or false")
    base = origin or {}
    seg = {**_machine_fields(base), "id": seg_id, "start": start, "end": end, "text": text,
           "translation": translation, "speaker": speaker, "checked": raw.get("checked", False),
           "english_source": _english_source(n, raw, base, translation)}
    seg["words"] = _words(base, seg)
    return seg


def _time(n: int, raw: dict, key: str) -> float:
    value = raw.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ReviewError(f"segment {n}: {key} must be a number of seconds, 0 or more")
    return round(float(value), 3)


def _text(n: int, raw: dict, key: str, *, required: bool) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ReviewError(f"segment {n}: {key} must be text")
    if len(value) > MAX_TEXT:
        raise ReviewError(f"segment {n}: {key} is {len(value)} characters; at most {MAX_TEXT}")
    return value


def _english_source(n: int, raw: dict, base: dict, translation: str | None) -> str | None:
    """Where the English came from. Unchanged English keeps its source; changed English is the
    reviewer's ("edited", or "written" where there was none), unless the editor says the reviewer took
    the machine's English for an edited original (`"accepted_machine": true`)."""
    stated = raw.get("english_source")
    if stated is not None and stated not in ENGLISH_SOURCES:
        raise ReviewError(f"segment {n}: english_source must be one of {', '.join(ENGLISH_SOURCES)}")
    if translation is None:
        return None
    if translation == base.get("translation"):
        return base.get("english_source") or stated
    if raw.get("accepted_machine") is True:
        return "machine"
    return "edited" if base.get("translation") else "written"


def _machine_fields(base: dict) -> dict:
    """The fields only the machine writes, as the base segment had them (empty for a new segment)."""
    defaults = {f: getattr(Segment(0, 0.0, 0.0, ""), f) for f in Segment.__dataclass_fields__
                if f not in WRITTEN_WHEN_SET}  # stored only when set, as in transcript.json
    return {**defaults, **{k: v for k, v in base.items() if k not in revisions.EDITABLE and k != "words"},
            "flags": list(base.get("flags") or [])}


def _words(base: dict, seg: dict) -> list[dict] | None:
    """Word times still true of the segment: none once its text changed, else those inside its times."""
    words = base.get("words")
    if words is None or seg["text"] != base.get("text") and seg["id"] == base.get("id"):
        return None
    inside = [w for w in words if seg["start"] - 0.05 <= w["start"] and w["end"] <= seg["end"] + 0.05]
    if seg["id"] != base.get("id") and "".join(w["word"] for w in inside).strip() != seg["text"].strip():
        return None  # a split whose text does not match the words it covers
    return inside


def _segment(data: dict) -> Segment:
    words = data.get("words")
    fields = {k: v for k, v in data.items() if k != "words" and k in Segment.__dataclass_fields__}
    return Segment(**fields, words=[Word(**w) for w in words] if words is not None else None)
