"""`testimony clean` of adaptation runs: the checkpoints `testimony adapt` leaves in `<archive>/.adapt/`.

A run's folder holds its checkpoint (the decoder and the optimiser's state: hundreds of MB for base)
and its before/after scores. Once its model entered `<archive>/.models/` (a record there names the
run), the folder only takes space: `clean` removes it. A run with no model yet is one a kill stopped,
which the same command resumes from its last epoch: it is kept unless asked (`--adapt-runs`), and even
then only once idle for the stated age, so a run in progress is never pulled from under itself.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.store import archive_models

RUNS = ".adapt"  # in the archive: one folder per run, named by its id (`pipeline.adapt.run.run_id`)


@dataclass(frozen=True)
class Removed:
    folder: Path
    size: int  # bytes freed
    model: str | None  # the model it made; None: an unfinished run


def finished(archive: Path) -> dict[str, str]:
    """{run id: model name} for every run whose model's record is in the archive's `.models/`."""
    done = {}
    for name in archive_models.names(archive):
        try:
            record = json.loads((archive_models.folder(archive) / f"{name}.pt.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if record.get("run_id"):
            done[record["run_id"]] = name
    return done


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _idle_days(folder: Path) -> float:
    newest = max([p.stat().st_mtime for p in folder.rglob("*")] + [folder.stat().st_mtime])
    return (time.time() - newest) / 86400


def clean_runs(archive: str | Path, *, unfinished: bool = False, older_than_days: float = 7.0) -> list[Removed]:
    """Remove the folders of finished runs, and of unfinished ones idle `older_than_days` when `unfinished`."""
    root = Path(archive) / RUNS
    if not root.is_dir():
        return []
    done, removed = finished(Path(archive)), []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        model = done.get(folder.name)
        if model is None and not (unfinished and _idle_days(folder) >= older_than_days):
            continue
        size = _size(folder)
        shutil.rmtree(folder)
        removed.append(Removed(folder, size, model))
    if not any(root.iterdir()):
        root.rmdir()
    return removed


def kept(archive: str | Path) -> list[Path]:
    """Unfinished runs left in place (resumable), for `clean` to mention."""
    root = Path(archive) / RUNS
    done = finished(Path(archive))
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name not in done) if root.is_dir() else []
