"""Reviewing a transcript: what a reviewer may change, the diff a save records, and the three-way merge
of two saves made from the same base.

The revision files themselves (naming, encoding, reading and checking the chain) are the archive's:
`pipeline.archive.revisions`, re-exported here so a reviewer's code reads one module.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.archive.revisions import (
    DIR,
    MACHINE,
    SCHEMA,
    Revision,
    RevisionChainError,
    chain,
    decode,
    encode,
    file_name,
    find,
    machine_draft,
    newest,
    read_chain,
    stored_files,
)
from pipeline.errors import TestimonyError

__all__ = ["DIR", "EDITABLE", "ENGLISH_SOURCES", "MACHINE", "SCHEMA", "Merge", "ReviewError", "Revision",
           "RevisionChainError", "chain", "decode", "diff", "encode", "file_name", "find", "machine_draft",
           "merge", "newest", "read_chain", "stored_files"]

# What a reviewer may change in a segment; everything else stays as the machine wrote it.
EDITABLE = ("start", "end", "text", "translation", "speaker", "checked", "english_source")
ENGLISH_SOURCES = ("machine", "edited", "written")


class ReviewError(TestimonyError):
    """A save that cannot be taken as it is (a 4xx); nothing was changed."""


def diff(before: list[dict], after: list[dict]) -> list[dict]:
    """Per segment id: added, removed, or the fields that changed with their values before and after."""
    old, new = {s["id"]: s for s in before}, {s["id"]: s for s in after}
    changes = []
    for seg_id in sorted(old.keys() | new.keys()):
        a, b = old.get(seg_id), new.get(seg_id)
        if a is None:
            changes.append({"segment": seg_id, "change": "added", "after": _recorded(b)})
        elif b is None:
            changes.append({"segment": seg_id, "change": "removed", "before": _recorded(a)})
        elif fields := _changed(_recorded(a), _recorded(b)):
            changes.append({"segment": seg_id, "change": "edited", "fields": fields})
    return changes


# What a change records: the editable fields, and the text of a loop the machine cut off, so a cut that
# leaves a segment (restored, dismissed, moved by a split or a merge) is on the record, not only in the
# earlier revision's segments. The cut's words and count stay there; its text says which loop it was.
RECORDED = (*EDITABLE, "cut")


def _changed(a: dict, b: dict) -> dict:
    return {k: [a.get(k), b.get(k)] for k in RECORDED if a.get(k) != b.get(k)}


def _recorded(segment: dict) -> dict:
    cut = segment.get("cut")
    return {**{k: segment.get(k) for k in EDITABLE}, **({"cut": cut.get("text")} if cut else {})}


@dataclass
class Merge:
    """A three-way merge of two saves made from the same base."""

    segments: list[dict]
    conflicts: list[dict]  # {"segment", "base", "theirs", "mine"}: both changed it, differently


def merge(base: list[dict], theirs: list[dict], mine: list[dict]) -> Merge:
    """Segments only one side changed take that side; both alike is no conflict; else a conflict."""
    b, t, m = ({s["id"]: s for s in side} for side in (base, theirs, mine))
    merged, conflicts = [], []
    for seg_id in sorted(b.keys() | t.keys() | m.keys()):
        was, their, my = b.get(seg_id), t.get(seg_id), m.get(seg_id)
        if their == my or my == was:
            chosen = their
        elif their == was:
            chosen = my
        else:
            conflicts.append({"segment": seg_id, "base": was, "theirs": their, "mine": my})
            chosen = their
        if chosen is not None:
            merged.append(chosen)
    merged.sort(key=lambda s: (s["start"], s["id"]))
    return Merge(merged, conflicts)
