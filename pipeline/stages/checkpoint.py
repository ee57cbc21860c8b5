"""Progress that survives a kill: an append-only JSON Lines file beside the extracted audio.

Each finished piece of work (a decoded window group, a batch of translations) is one line, written
and fsynced before the next piece starts. A line cut short by a kill is dropped on reading and
overwritten by the next append, so a resumed run redoes at most the piece it was killed in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline import config, failpoints


class Checkpoint:
    def __init__(self, path: str | Path | None, identity: dict[str, Any] | None = None) -> None:
        """`identity` names what the work depends on beyond the file name (the model's and the WAV's
        hashes): a checkpoint written for other inputs is discarded, never mixed in."""
        self.path = Path(path) if path is not None else None  # None: keep nothing (arrays, eval clips)
        self.entries: list[dict[str, Any]] = self._read()
        if identity is not None:
            if self.entries and self.entries[0] != {"kind": "identity", **identity}:
                self.path.unlink()
                self.entries = []
            if not self.entries:
                self.add("identity", **identity)

    def _read(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        entries, good = [], 0
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # the write a kill interrupted
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    break
                good += len(line)
        if good != self.path.stat().st_size:
            os.truncate(self.path, good)
        return entries

    def find(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("kind") == kind]

    def add(self, kind: str, **fields: Any) -> None:
        entry = {"kind": kind, **fields}
        self.entries.append(entry)
        if self.path is None:
            return
        mode = config.file_mode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        try:
            os.fchmod(fd, mode)
            data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
            while data:  # a short write (the disk filling up) continues; a failed one raises
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        failpoints.reached(f"{self.path.stem}:{kind}", len(self.find(kind)))
