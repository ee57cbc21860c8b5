"""Append-only JSON Lines files that survive kills: the one appender the custody logs and checkpoints share.

A line is written whole under an exclusive lock (so concurrent writers never interleave) and fsynced
before the call returns. A reader takes only lines that end in a newline: a last line without one is
the write a kill or power cut interrupted, never a record.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


class Appender:
    """An open, exclusively locked JSON Lines file (see `locked`)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def last_line(self) -> bytes | None:
        """The last full line (its bytes, newline included), or None when there is none."""
        size = self.size()
        chunk, tail, pos = 4096, b"", size
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            tail = os.pread(self.fd, step, pos) + tail
            if tail.count(b"\n") >= 2 or pos == 0:
                break
        lines = tail.splitlines(keepends=True)
        return lines[-1] if lines else None

    def write(self, data: bytes) -> None:
        """Append `data` and flush it to disk; a short write (the disk filling up) continues."""
        while data:
            data = data[os.write(self.fd, data):]
        os.fsync(self.fd)


@contextmanager
def locked(path: str | Path, mode: int) -> Iterator[Appender]:
    """The file at `path` (created with `mode`), open for appending under an exclusive lock until exit."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield Appender(fd, path)
    finally:
        os.close(fd)  # closing releases the lock


def encode(record: dict[str, Any], *, ascii_only: bool = False) -> bytes:
    """One record as one line of UTF-8 (or pure ASCII, non-ASCII as JSON escapes), newline included."""
    text = json.dumps(record, ensure_ascii=ascii_only, default=str) + "\n"
    return text.encode("ascii" if ascii_only else "utf-8")


def whole_lines(data: bytes) -> list[bytes]:
    """The lines of `data` that end in a newline (newline included): a cut-off last line is left out."""
    lines = data.splitlines(keepends=True)
    return lines if not lines or lines[-1].endswith(b"\n") else lines[:-1]


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every whole line of the file parsed, oldest first; [] when there is no file. A whole line that is
    not a JSON object is skipped (an integrity check reports it, by line number)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in whole_lines(path.read_bytes()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def valid_prefix(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """(the records up to the first line that is cut off or not JSON, how many bytes they take)."""
    records, good = [], 0
    for line in whole_lines(data):
        try:
            records.append(json.loads(line))
        except ValueError:
            break
        good += len(line)
    return records, good


def read_and_cut(path: str | Path, mode: int) -> list[dict[str, Any]]:
    """The file's records up to the first bad line; what follows it (a kill's torn write) is cut off, so
    the next append starts on a line of its own. [] when there is no file."""
    path = Path(path)
    if not path.exists():
        return []
    with locked(path, mode) as log:
        records, good = valid_prefix(path.read_bytes())
        if good != log.size():
            os.ftruncate(log.fd, good)
    return records
