"""Abandoned work folders: extracted witness audio and checkpoints a failed run left in `.work/`.

A failed run keeps its work folder on purpose, so the next run resumes from the last finished chunk.
One nobody comes back to is still witness audio lying in the archive: after a stated age (7 days by
default) with no file in it touched, `testimony clean` removes it, and `serve` does at start. Each
removal is logged in the video's custody log. A folder in use is touched every chunk, so an age of
days never meets a run in progress.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from pipeline import __version__
from pipeline.archive import custody
from pipeline.archive.bundle import tidy_after_kill
from pipeline.archive.locks import work_lock

WORK = ".work"
DEFAULT_DAYS = 7.0


def _last_touched(folder: Path) -> float:
    times = [p.stat().st_mtime for p in folder.rglob("*")] + [folder.stat().st_mtime]
    return max(times)


def abandoned(archive: Path, older_than_days: float) -> list[Path]:
    """Work folders in which nothing was touched for `older_than_days`."""
    root = Path(archive) / WORK
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_days * 86400
    return [f for f in sorted(root.iterdir()) if f.is_dir() and _last_touched(f) < cutoff]


def _full_sha(archive: Path, prefix: str) -> str | None:
    """The SHA-256 whose custody log a work folder (named by its first 12 digits) belongs to."""
    logs = sorted((Path(archive) / custody.DIR).glob(f"{prefix}*.jsonl"))
    return logs[0].stem if len(logs) == 1 else None


def _remove_unless_running(archive: Path, folder: Path) -> bool:
    """Remove an abandoned work folder and log it, unless a run holds the video's work lock (it is in use,
    however old its files: a run waiting for a model, or a resumed run that has not written yet)."""
    lock = work_lock(archive, folder.name) if re.fullmatch(r"[0-9a-f]{12}", folder.name) else None
    if lock is not None and not lock.acquire(blocking=False):
        return False
    try:
        age_days = (time.time() - _last_touched(folder)) / 86400
        shutil.rmtree(folder, ignore_errors=True)
        if sha := _full_sha(archive, folder.name):
            custody.append(archive, sha, "stage", name="clean", tool="testimony", version=__version__,
                           removed=str(folder), idle_days=round(age_days, 1))
    finally:
        if lock is not None:
            lock.release()
    return True


def clean(archive: str | Path, older_than_days: float = DEFAULT_DAYS) -> list[Path]:
    """Remove abandoned work folders (and what killed publishes left); return what was removed."""
    archive = Path(archive)
    if not archive.is_dir():
        return []
    tidy_after_kill(archive)
    removed = []
    for folder in abandoned(archive, older_than_days):
        if _remove_unless_running(archive, folder):
            removed.append(folder)
    root = archive / WORK
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return removed
