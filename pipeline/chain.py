"""Hash-chained JSON Lines logs: the chaining the custody logs and the access log share, written once.

Each line carries `prev`, the SHA-256 of the previous line's bytes (newline included; GENESIS, 64 zeros,
on the first line), so editing, removing or reordering an earlier line breaks the chain and `problems`
names the line. Lines go through the one appender (`jsonl.locked`), under its exclusive lock; a last line
a kill cut off is never a record: it is set aside beside the log (`set_aside_torn_tail`) before the next
line, so the chain goes on from the last whole line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pipeline import jsonl

GENESIS = "0" * 64


def now() -> str:
    """The time a line records: UTC, ISO 8601 with microseconds, so lines of one second still sort."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def prev_hash(log: jsonl.Appender) -> str:
    """What the next line's `prev` is: the hash of the log's last whole line (the caller holds its lock)."""
    last = log.last_line()
    return hashlib.sha256(last).hexdigest() if last is not None else GENESIS


def set_aside_torn_tail(log: jsonl.Appender) -> dict[str, Any] | None:
    """A last line without its newline (a crash mid-write) is kept in `<stem>.torn-<n>` beside the log
    (0600) and cut from it; what the caller logs about it (`kept`, `size`, `fragment_sha256`), or None
    when the log ends whole. The caller holds the log's lock."""
    torn = log.torn_tail()
    if not torn:
        return None
    kept = _torn_path(log.path)
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, torn)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.cut(log.size() - len(torn))
    return {"kept": kept.name, "size": len(torn), "fragment_sha256": hashlib.sha256(torn).hexdigest()}


def _torn_path(log: Path) -> Path:
    """The first free `<stem>.torn-<n>` beside the log."""
    n = 1
    while (path := log.with_name(f"{log.stem}.torn-{n}")).exists():
        n += 1
    return path


def read_shared(path: Path) -> bytes:
    """The log's bytes, read under a shared lock: a line being appended (under the writer's exclusive
    lock) is never caught half written and taken for a torn one. Opens read-only; writes nothing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def problems(data: bytes, label: str, torn_hint: str,
             check: Callable[[dict[str, Any]], str | None] | None = None) -> list[str]:
    """Problems with a chained log's bytes (empty when intact), each naming `label` and the line.

    `torn_hint` says what sets a cut-off last line aside; `check` may find a problem in one record
    (custody: a line naming another video)."""
    found = []
    if data and not data.endswith(b"\n"):
        found.append(f"{label}: the last line is incomplete (a write was cut off): {torn_hint}")
    expected = GENESIS
    for n, line in enumerate(jsonl.whole_lines(data), start=1):
        record = _record(line, f"{label} line {n}", found)
        if record and record.get("prev") != expected:
            found.append(f"{label} line {n}: prev does not match line {n - 1}'s hash: an earlier "
                         "line was changed, removed or reordered")
        if record and check and (problem := check(record)):
            found.append(f"{label} line {n}: {problem}")
        expected = hashlib.sha256(line).hexdigest()
    return found


def _record(line: bytes, where: str, found: list[str]) -> dict[str, Any]:
    """The line's JSON object, or {} with the reason added to `found`."""
    try:
        record = json.loads(line)
    except ValueError:
        found.append(f"{where}: not valid JSON")
        return {}
    if not isinstance(record, dict):
        found.append(f"{where}: not a JSON object")
        return {}
    return record


def head(data: bytes) -> str:
    """`N:SHA256`, the log's count of whole lines and the hash of the last. Each line vouches only for the
    one before it, so the chain alone cannot show its last lines edited or removed; a head written down
    somewhere else (a note, a partner's mail) can, through `holds`."""
    lines = jsonl.whole_lines(data)
    return f"{len(lines)}:{hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS}"


def holds(data: bytes, label: str, noted: str) -> list[str]:
    """Problems (empty when none) with a log against a head noted earlier: its line N must still be
    there, byte for byte; with the chain intact, so is every line before it."""
    count, digest = noted.split(":")
    lines, n = jsonl.whole_lines(data), int(count)
    if n > len(lines):
        return [f"{label}: has {len(lines)} whole line(s), but the head noted earlier is line {n}: lines were "
                "removed"]
    if n and hashlib.sha256(lines[n - 1]).hexdigest() != digest:
        return [f"{label} line {n}: differs from the head noted earlier: the line was changed or replaced"]
    return []


def verified(data: bytes, label: str, torn_hint: str, check: Callable[[dict[str, Any]], str | None] | None = None,
             noted: str | None = None) -> tuple[list[str], str | None]:
    """`problems` and, against a head `noted` earlier, `holds`, from one read of the log; and the head to
    keep elsewhere, taken from the same bytes and only when they had no problem (None otherwise)."""
    found = problems(data, label, torn_hint, check) + (holds(data, label, noted) if noted else [])
    return found, None if found else head(data)
