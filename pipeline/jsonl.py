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


class AppendError(OSError):
    """A line could not be written whole; the file was cut back to what it held before."""


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

    def torn_tail(self) -> bytes:
        """The bytes after the last newline: a line a kill or power cut cut off (b"" when there is none)."""
        pos, tail = self.size(), b""
        while pos > 0 and b"\n" not in tail:
            step = min(4096, pos)
            pos -= step
            tail = os.pread(self.fd, step, pos) + tail
        return tail[tail.rfind(b"\n") + 1:]

    def cut(self, size: int) -> None:
        """Shorten the file to `size` bytes, on disk before this returns."""
        os.ftruncate(self.fd, size)
        os.fsync(self.fd)

    def write(self, data: bytes) -> None:
        """Append `data` whole and flush it to disk, or append nothing: a short write (the disk filling up)
        continues; a failed one cuts the file back to its size before and raises AppendError."""
        start = self.size()
        try:
            while data:
                data = data[os.write(self.fd, data):]
            os.fsync(self.fd)
        except OSError as exc:
            try:
                self.cut(start)
            except OSError:
                pass  # the reader still ignores the cut-off line, and the next append sets it aside
            raise AppendError(exc.errno, f"{exc.strerror or exc}; nothing was added to it", str(self.path)) from exc


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
