"""Revisions of a transcript: every save a new file on a chain of hashes, nothing ever overwritten.

In a bundle, `revisions/0000.json` is the machine's draft and each later file one save: its number,
the SHA-256 of its parent's file, who saved it and when, the revision the reviewer started from
(`base`), the whole segment list and what changed. `transcript.json` carries the newest revision's
segments, and every rendering is made from it by the same `write_bundle` a run uses. A bundle nobody
reviewed has no folder: its revision 0 is implied by transcript.json, byte for byte the file the
first save writes, so its hash is known before it exists.

Each save publishes a new bundle folder (one rename, as a run does) holding one new revision file; the
earlier files are hard links to the previous folder's (`bundle.write_bundle`), so a long review writes
each revision once. A bundle whose revision files are copies, as saves before the links left them,
is the same layout: files named by number, each holding its parent's hash. It reads and verifies
unchanged, and its next save links those copies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.archive.bundle import REVISIONS as DIR
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.errors import TestimonyError
from pipeline.transcript import read_json

SCHEMA = "testimony.revision/1"
MACHINE = "machine"

class RevisionChainError(TestimonyError):
    """The revisions on disk do not form one chain back to the machine's draft."""


@dataclass(frozen=True)
class Revision:
    """One revision as stored: its file's SHA-256 and what the file holds."""

    number: int
    sha256: str
    parent: str | None
    author: str
    time: str
    base: int | None  # the revision the reviewer edited from; differs from number - 1 after a merge
    segments: list[dict[str, Any]]
    changes: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = True  # False: revision 0 implied by transcript.json, not written yet

    def summary(self) -> dict[str, Any]:
        """What the history lists: everything but the segments."""
        return {"number": self.number, "sha256": self.sha256, "parent": self.parent, "author": self.author,
                "time": self.time, "base": self.base, "changed": len(self.changes)}


def file_name(number: int) -> str:
    return f"{DIR}/{number:04d}.json"


def encode(number: int, parent: str | None, author: str, time: str, base: int | None,
           segments: list[dict], changes: list[dict]) -> bytes:
    """The canonical bytes of a revision file; its SHA-256 is the revision's name."""
    document = {"schema": SCHEMA, "number": number, "parent": parent, "author": author, "time": time,
                "base": base, "changes": changes, "segments": segments}
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def decode(data: bytes, where: str) -> Revision:
    try:
        doc = json.loads(data)
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}, expected {SCHEMA}")
        return Revision(int(doc["number"]), hashlib.sha256(data).hexdigest(), doc["parent"], str(doc["author"]),
                        str(doc["time"]), doc["base"], list(doc["segments"]), list(doc["changes"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RevisionChainError(f"{where}: not a revision file ({exc})") from None


def machine_draft(transcript_data: dict) -> bytes:
    """Revision 0's bytes: the segments of the transcript the machine published."""
    return encode(0, None, MACHINE, str(transcript_data.get("created") or ""), None,
                  list(transcript_data["segments"]), [])


def stored_files(bundle: Path) -> list[Path]:
    """The bundle's revision files, oldest first; none before the first save."""
    folder = bundle / DIR
    return sorted(folder.glob("[0-9][0-9][0-9][0-9].json")) if folder.is_dir() else []


def _read(bundle: Path, path: Path) -> Revision:
    return decode(path.read_bytes(), f"{bundle.name}/{DIR}/{path.name}")


def _implied(bundle: Path) -> Revision:
    """Revision 0 of a bundle nobody has saved: the machine's draft, as transcript.json holds it."""
    data = read_json(bundle / TRANSCRIPT)
    implied = machine_draft(data)
    return Revision(0, hashlib.sha256(implied).hexdigest(), None, MACHINE, str(data.get("created") or ""),
                    None, list(data["segments"]), [], stored=False)


def chain(bundle: Path) -> list[Revision]:
    """The bundle's revisions, oldest first; revision 0 implied from transcript.json when none is stored."""
    files = stored_files(bundle)
    return [_read(bundle, path) for path in files] if files else [_implied(bundle)]


def newest(bundle: Path) -> Revision:
    """The newest revision, reading its one file (a save or an export need no more)."""
    files = stored_files(bundle)
    return _read(bundle, files[-1]) if files else _implied(bundle)


def find(bundle: Path, sha256: str) -> Revision | None:
    """The revision whose file has this SHA-256, newest first (a save usually starts from the newest):
    files are hashed until one matches, and only that one is parsed."""
    files = stored_files(bundle)
    if not files:
        implied = _implied(bundle)
        return implied if implied.sha256 == sha256 else None
    for path in reversed(files):
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            return decode(data, f"{bundle.name}/{DIR}/{path.name}")
    return None


def read_chain(bundle: Path) -> tuple[list[Revision], list[str]]:
    """(the revisions, problems with them: numbering, parent hashes, and transcript.json's segments)."""
    try:
        revisions = chain(bundle)
    except (RevisionChainError, OSError, ValueError, KeyError) as exc:
        return [], [f"{bundle.name}: revisions unreadable ({exc})"]
    return revisions, _chain_problems(bundle, revisions)


def _chain_problems(bundle: Path, revisions: list[Revision]) -> list[str]:
    name = bundle.name
    problems, parent = [], None
    for expected, revision in enumerate(revisions):
        where = f"{name}/{file_name(expected)}"
        if revision.number != expected:
            problems.append(f"{where}: numbered {revision.number}, expected {expected} (a revision is missing)")
        if revision.parent != parent:
            problems.append(f"{where}: its parent hash does not match revision {expected - 1}: an earlier "
                            "revision was changed, removed or replaced")
        parent = revision.sha256
    try:
        published = read_json(bundle / TRANSCRIPT)["segments"]
    except (OSError, ValueError, KeyError):
        return problems  # the manifest check already names a missing or changed transcript
    if revisions and published != revisions[-1].segments:
        problems.append(f"{name}/{TRANSCRIPT}: its segments are not those of the newest revision "
                        f"({revisions[-1].number})")
    return problems
