"""The record of one installed model, whatever its format: what the transcript and custody cite."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    """One model in the store, as a run names it.

    name: the store name (`base`, `ug-tiny`) or, for a path given directly, the file or folder name.
    path: the checkpoint file (openai-whisper) or the model folder (CTranslate2).
    sha256: of the checkpoint file, or of a CTranslate2 folder's `model.bin`: checked before loading.
    origin: where it came from (a download, an import, a conversion and of what).
    licence: as the source states it, empty when unknown.
    source_sha256: for a conversion, the SHA-256 of the checkpoint it was converted from.
    """

    name: str
    path: Path
    sha256: str
    origin: str
    licence: str = ""
    source_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "path": str(self.path), "sha256": self.sha256, "origin": self.origin,
                "licence": self.licence}
        if self.source_sha256 is not None:
            data["source_sha256"] = self.source_sha256
        return data
