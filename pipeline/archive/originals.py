"""Originals kept as evidence: copied into the archive read-only (the default), or referenced in place.

Berkeley Protocol practice is to preserve the original exactly as received and work on copies. With
`TESTIMONY_ORIGINALS=copy` each video is copied to `<archive>/originals/<sha256><ext>` once per content,
the copy hashed as it is written and checked against the SHA-256 taken on arrival, then made
read-only. Every tool then reads that copy, so the inbox file can be moved or deleted later.
`TESTIMONY_ORIGINALS=reference` keeps only the path (for archives too large to hold twice); the
custody log records which was done.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from pipeline import atomic, config, failpoints
from pipeline.archive import custody
from pipeline.errors import BadInputError, OriginalChangedError, TestimonyError
from pipeline.hashing import file_sha256

ENV = "TESTIMONY_ORIGINALS"
MODES = ("copy", "reference")
DIR = "originals"
CHUNK = 1 << 20


def mode() -> str:
    value = os.environ.get(ENV, "copy").strip().lower() or "copy"
    if value not in MODES:
        raise TestimonyError(f"{ENV}={value!r} is not a setting: use `copy` (keep a read-only copy of each "
                             "original in the archive, the default) or `reference` (leave originals where they are)")
    return value


def kept_path(archive: str | Path, sha256: str, suffix: str = "") -> Path:
    return Path(archive) / DIR / f"{sha256}{suffix}"


def find_kept(archive: str | Path, sha256: str) -> Path | None:
    """The archive's copy of an original, whatever its extension."""
    folder = Path(archive) / DIR
    if not folder.is_dir():
        return None
    return next((p for p in sorted(folder.glob(f"{sha256}*")) if p.is_file()), None)


def _suffix(video: Path) -> str:
    """The extension, if it is a plain one (players need it; names from outside are never trusted)."""
    suffix = video.suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def preserve(video: str | Path, archive: str | Path, sha256: str) -> Path:
    """The file every stage reads: the archive's read-only copy of `video`, or `video` itself (reference)."""
    video, archive = Path(video), Path(archive)
    if mode() == "reference":
        return video
    if (kept := find_kept(archive, sha256)) is not None:
        record_unlogged(archive, sha256, kept)  # a run killed between copying it and logging it
        return kept
    failpoints.reached("preserve:begin")
    folder = config.private_dirs(archive / DIR)
    kept = kept_path(archive, sha256, _suffix(video))
    for stale in folder.glob(f".{sha256}*.partial-*"):  # copies a killed run left half-made
        if not config.pid_alive(int(stale.name.rsplit("-", 2)[1])):
            stale.unlink(missing_ok=True)
    partial = folder / f".{kept.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        digest = _copy_hashing(video, partial)
        if digest != sha256:
            raise OriginalChangedError(
                f"{video} changed while it was copied into the archive (SHA-256 {sha256} on arrival, {digest} "
                "in the copy): it is probably still being written. Wait until it is complete and run again.")
        os.chmod(partial, config.file_mode() & 0o444)  # read-only: nothing of ours ever writes to it
        atomic.publish(partial, kept, synced=True)  # survives a power cut before custody claims it
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    failpoints.reached("preserve:copied")
    _record(archive, sha256, kept)
    return kept


def _record(archive: Path, sha256: str, kept: Path, **fields: str) -> dict:
    return custody.append(archive, sha256, "stage", name="preserve", tool="testimony", path=str(kept),
                          output_sha256=sha256, mode=oct(kept.stat().st_mode & 0o777), **fields)


def record_unlogged(archive: str | Path, sha256: str, kept: Path | None = None) -> dict | None:
    """The archive's copy of an original that custody never logged (a run killed between copying and
    logging it): re-hashed and logged now, so no copy is used unlogged; the event, or None.

    A copy whose bytes are not the SHA-256 it is named by is refused, never logged or used.
    """
    archive = Path(archive)
    kept = kept or find_kept(archive, sha256)
    if kept is None or kept.name in {p.name for p in custody.preserved_paths(archive, sha256)}:
        return None
    if (digest := file_sha256(kept)) != sha256:
        raise OriginalChangedError(
            f"{kept}: the archive's copy of the original is not the video it is named by (its SHA-256 is "
            f"{digest}): it changed after it was copied. Move it out of {kept.parent} (keep it for inspection) "
            "and run again: the original is then copied anew.")
    return _record(archive, sha256, kept, recovered="copied by an interrupted run; found complete, logged now")


def named_as_received(exc: BadInputError, kept: Path, video: Path) -> BadInputError:
    """The same error about the archive's copy, told about the file the user gave (same bytes)."""
    if kept == video:
        return exc
    problem = exc.problem.replace(str(kept), str(video))
    return BadInputError(video, problem, exc.hint)


def _copy_hashing(source: Path, dest: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, config.file_mode())
    try:
        with open(source, "rb") as src, open(fd, "wb", closefd=False) as out:
            while block := src.read(CHUNK):
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    finally:
        os.close(fd)
    return h.hexdigest()
