"""Progress that survives a kill: an append-only JSON Lines file beside the extracted audio.

Each finished piece of work (a decoded window group, a batch of translations) is one line, written
and fsynced before the next piece starts. A line cut short by a kill is dropped on reading and
overwritten by the next append, so a resumed run redoes at most the piece it was killed in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline import config, failpoints, jsonl


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
        if self.path is None:
            return []
        return jsonl.read_and_cut(self.path, config.file_mode())

    def find(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("kind") == kind]

    def add(self, kind: str, **fields: Any) -> None:
        entry = {"kind": kind, **fields}
        self.entries.append(entry)
        if self.path is None:
            return
        mode = config.file_mode()
        with jsonl.locked(self.path, mode) as log:
            os.fchmod(log.fd, mode)
            log.write(jsonl.encode(entry))
        failpoints.reached(f"{self.path.stem}:{kind}", len(self.find(kind)))
