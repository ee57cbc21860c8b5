"""The flows `testimony serve` deploys: a dropped file, a whole folder, and re-translating a transcript.

Each runs the stages of `process-video` (as tasks, so every stage shows in the UI) and adds what the
service owes the archive team: a failed file set aside with its reason, a duplicate recorded against
the first bundle, and the catalog and artifacts kept current. A dropped file's stages run as tasks of
its own `inbox` run, not in a subflow: a flow run costs about a second of setup and teardown, and a
burst pays it per file.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger

from pipeline import config
from pipeline.archive import catalog
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.errors import ModelMissingError, OriginalChangedError, TestimonyError
from pipeline.names import display_name
from pipeline.run import process
from pipeline.run.sidecar import SidecarError, is_sidecar, sidecar_path
from pipeline.transcript import read_json

from .process_video import prefect_stages, process_video, process_video_flow, show_in_ui

FAILED_DIR = "failed"


def set_aside(video: Path, inbox: Path, reason: str) -> Path:
    """Move a file that failed into `inbox/failed/` beside a reason file; never delete or change it."""
    failed = inbox / FAILED_DIR
    failed.mkdir(exist_ok=True)
    target, n = failed / video.name, 1
    while target.exists() or target.is_symlink():
        n += 1
        target = failed / f"{video.stem}-{n}{video.suffix}"
    os.rename(video, target)  # same file system: the bytes are untouched
    if (notes := sidecar_path(video)).is_file():  # the sidecar goes with its video
        os.rename(notes, sidecar_path(target))
    note = target.with_name(target.name + ".reason.txt")
    note.write_text(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\n"
                    f"file: {video}\nreason: {reason}\n", encoding="utf-8")
    return target


def language_folder(name: str) -> str | None:
    """The language an inbox subfolder names (`kk`, `ug`, ...), or None for any other folder."""
    import argparse

    from pipeline.run.options import language_code

    if name == FAILED_DIR or name.startswith(".") or name == "auto":
        return None
    try:
        return language_code(name) if len(name) <= 3 else None
    except argparse.ArgumentTypeError:
        return None


def _outside(video: Path, inbox: Path) -> bool:
    """A name or symlink that leads out of the inbox is never read."""
    try:
        video.resolve().relative_to(inbox.resolve())
    except ValueError:
        return True
    return False


@flow(name="process-inbox-file", log_prints=True)
def process_inbox_file(video: str, inbox: str, out: str | None = None) -> str:
    """One file dropped into the inbox: processed once per content, or set aside with a reason."""
    path, inbox_dir, archive = Path(video), Path(inbox), config.archive_dir(out)
    if _outside(path, inbox_dir):
        reason = "the path leads outside the inbox (a symlink or ../ in the name); it was not read"
        catalog.record_arrival(archive, None, str(path), f"refused: {reason}")
        raise TestimonyError(f"{path}: {reason}")
    if not path.exists():
        return f"{path} is gone (moved away before it was processed)"
    if path.is_dir() and not path.is_symlink():  # a folder is never a video, and never set aside
        return f"{path} is a folder, not a video: left where it is"
    language = language_folder(path.parent.name) if path.parent.resolve() != inbox_dir.resolve() else None
    try:
        result = process_video(str(path), out=str(archive), **({"language": language} if language else {}))
    except Exception as exc:
        if not _machine_fault(exc):
            _set_aside(path, inbox_dir, archive, exc)
            raise
        # The machine's fault (disk, permissions, memory, a model), or the file is still being written.
        reason = f"{exc}. {path.name} stays in the inbox: fix this, then restart serve (or touch the file)"
        try:
            catalog.record_arrival(archive, None, str(path), f"waiting: {reason}")
        except Exception:  # the archive itself may be what is failing
            pass
        get_run_logger().error("%s", reason)
        raise
    outcome = "processed" if result.status == "done" else _reuse_outcome(result.bundle, path)
    catalog.record_arrival(archive, _sha256_of(result.bundle), str(path), outcome)
    return f"{path.name}: {outcome} -> {result.bundle}"


def _reuse_outcome(bundle: Path, path: Path) -> str:
    """A file announced again (serve restarted) is not a duplicate of its own bundle."""
    try:
        made_from = read_json(bundle / TRANSCRIPT)["source"]["file_name"]
    except (OSError, ValueError, KeyError):
        made_from = None
    if made_from == display_name(path):
        return f"already processed: {bundle.name}"
    return f"duplicate of {bundle.name}"


def _machine_fault(exc: BaseException) -> bool:
    """Faults a fix on this machine cures, so the file waits in the inbox instead of `failed/` (a broken
    sidecar too: fixing it is the team's, and the video must not be decoded without it)."""
    if isinstance(exc, (OSError, MemoryError, ModelMissingError, OriginalChangedError, SidecarError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()  # torch's CUDA/CPU OOM


def _set_aside(path: Path, inbox: Path, archive: Path, exc: BaseException) -> None:
    """Bad input (or a fault we cannot place): keep the file, say why, keep serving."""
    reason = str(exc) or type(exc).__name__
    target = set_aside(path, inbox, reason)
    catalog.record_arrival(archive, None, str(path), f"failed: {reason}")
    get_run_logger().error("%s set aside as %s: %s", path.name, target, reason)


def _sha256_of(bundle: Path) -> str:
    return read_json(bundle / TRANSCRIPT)["source"]["sha256"]


@flow(name="process-folder", log_prints=True)
def process_folder(folder: str, out: str | None = None, language: str = "auto",
                   translate_to_english: bool = True) -> list[str]:
    """Every video in a folder (not its subfolders); a bad file is reported and the rest go on."""
    lines = []
    for path in sorted(p for p in Path(folder).iterdir()
                       if p.is_file() and not p.name.startswith(".") and not is_sidecar(p)):
        try:
            result = process_video_flow(str(path), out=out, language=language,
                                        translate_to_english=translate_to_english)
            lines.append(f"{path.name}: {result.status} -> {result.bundle}")
        except Exception as exc:
            lines.append(f"{path.name}: FAILED {exc}")
    for line in lines:
        print(line)
    return lines


@flow(name="retranslate", log_prints=True)
def retranslate(video: str, out: str | None = None) -> str:
    """Translate an existing transcript again (after a better package was imported); ASR is kept."""
    archive = config.archive_dir(out)
    result = process.retranslate(archive, video, stages=prefect_stages(archive))
    show_in_ui(archive, result.bundle)
    return str(result.bundle)
