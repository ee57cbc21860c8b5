"""The flows `testimony serve` deploys: a dropped file, a whole folder, and re-translating a transcript.

Each runs the stages of `process-video` (as tasks, so every stage shows in the UI) and adds what the
service owes the archive team: a failed file set aside with its reason, an archived one moved out of the
inbox, a duplicate recorded against the first bundle, nothing followed through a symlink, and the
catalog and artifacts kept current. A dropped file's stages run as tasks of
its own `inbox` run, not in a subflow: a flow run costs about a second of setup and teardown, and a
burst pays it per file.
"""

from __future__ import annotations

import base64
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

from prefect import State, flow, get_run_logger
from prefect.states import Failed

from pipeline import config
from pipeline.archive import catalog
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.errors import ModelMissingError, OriginalChangedError, TestimonyError
from pipeline.names import display_name, display_path, one_line
from pipeline.run import process
from pipeline.run.sidecar import SidecarError, is_sidecar, sidecar_path
from pipeline.transcript import read_json

from . import taking
from .process_video import prefect_stages, process_video, process_video_flow, show_in_ui

FAILED_DIR = "failed"
DONE_DIR = "done"  # processed files leave the inbox, so a restart announces and hashes nothing again
BYTES_PREFIX = "fsbytes:"  # an event payload carrying a file name that is not UTF-8


def to_payload(path: Path) -> str:
    """The path as event text: itself when UTF-8, else its bytes in base64 (a JSON payload cannot hold
    them, and such a name must be processed, not dropped)."""
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return BYTES_PREFIX + base64.urlsafe_b64encode(os.fsencode(path)).decode("ascii")


def from_payload(text: str) -> Path:
    if text.startswith(BYTES_PREFIX):  # never an absolute path, which is all the watcher sends otherwise
        return Path(os.fsdecode(base64.urlsafe_b64decode(text[len(BYTES_PREFIX):])))
    return Path(text)


def own_folder(inbox: Path, name: str) -> Path:
    """`inbox/<name>`, made if missing; refused when it is a symlink or a file someone planted, so
    nothing is ever moved or written through it."""
    folder = inbox / name
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise TestimonyError(f"{display_path(folder)} is a symlink or a file, not a folder: nothing is moved "
                             "through it. Remove it; serve makes the folder itself")
    return folder


def move_out(video: Path, inbox: Path, name: str) -> Path:
    """Move `video` (with its sidecar) into `inbox/<name>/` under a free name; a symlink moves as the
    link, never followed, and the bytes are untouched (same file system)."""
    target = taking.free_name(own_folder(inbox, name), video.name)
    os.rename(video, target)
    if os.path.lexists(notes := sidecar_path(video)):  # the sidecar goes with its video
        os.rename(notes, sidecar_path(target))
    return target


def set_aside(video: Path, inbox: Path, reason: str, dropped: Path | None = None) -> Path:
    """Move a file that failed into `inbox/failed/` beside a reason file; never delete or change it.
    `dropped`: where it was dropped, when `video` is where it was taken to."""
    target = move_out(video, inbox, FAILED_DIR)
    note = target.with_name(target.name + ".reason.txt")
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\nfile: {dropped or video}\n"
                f"reason: {reason}\n")
    return target


def language_folder(name: str) -> str | None:
    """The language an inbox subfolder names (`kk`, `ug`, ...), or None for any other folder."""
    import argparse

    from pipeline.run.options import language_code

    if name in (FAILED_DIR, DONE_DIR) or name.startswith(".") or name == "auto":  # .taking too
        return None
    try:
        return language_code(name) if len(name) <= 3 else None
    except argparse.ArgumentTypeError:
        return None


def _refusal(video: Path, inbox: Path) -> tuple[str, bool] | None:
    """Why a path is not read, and whether the entry itself may be set aside; None when it may be read.

    Nothing is followed: the file and its folder must be what they say, not symlinks (a link's target
    could be anywhere, or swapped after a check)."""
    inbox = inbox.absolute()
    if ".." in video.parts or inbox not in (video.parent, video.parent.parent):
        return "the path leads outside the inbox (../ in the name); it was not read", False
    if video.parent != inbox and os.path.islink(video.parent):
        return f"its folder {video.parent.name}/ is a symbolic link; it was not followed", False
    if os.path.islink(video):
        return "it is a symbolic link; it was not followed (copy the file itself into the inbox)", True
    if os.path.islink(sidecar_path(video)):
        return f"its sidecar {sidecar_path(video).name} is a symbolic link; it was not followed", True
    return None


def _failed(message: str) -> State:
    """The run's final state: Failed, with one message (raising would print a traceback and repeat it)."""
    return Failed(message=message)


@flow(name="process-inbox-file", log_prints=True)
def process_inbox_file(video: str, inbox: str, out: str | None = None) -> str | State:
    """One file dropped into the inbox: taken into a private folder (so what is read is what was
    checked), processed once per content and moved to `inbox/done/`, or set aside in `inbox/failed/`
    with a reason, or put back to wait when the machine is at fault."""
    path, inbox_dir, archive = from_payload(video), Path(inbox).absolute(), config.archive_dir(out)
    if not os.path.lexists(path):
        return f"{display_path(path)} is gone (moved away before it was processed)"
    if refused := _refusal(path, inbox_dir):
        return _refuse(path, inbox_dir, archive, *refused)
    if path.is_dir():  # a folder is never a video, and never set aside
        return f"{display_path(path)} is a folder, not a video: left where it is"
    language = language_folder(path.parent.name) if path.parent != inbox_dir else None
    try:
        taken = taking.take(path, inbox_dir)
    except taking.NotTaken as exc:
        return _not_taken(exc, path, inbox_dir, archive)
    except FileNotFoundError:  # another run took it first (announced twice)
        return f"{display_path(path)} is gone (moved away before it was processed)"
    except Exception as exc:  # a pipe or device (bad input), or .taking/ unusable (the machine's)
        return _failure(exc, path, inbox_dir, archive)
    try:
        return _process_taken(taken, inbox_dir, archive, language)
    finally:
        taken.release()  # what is still there (to wait for a fix) goes back into the inbox


def _process_taken(taken: taking.Taken, inbox: Path, archive: Path, language: str | None) -> str | State:
    """The taken file through the pipeline; it leaves its folder for done/ or failed/, or stays to be put back."""
    try:
        result = process_video(str(taken.path), out=str(archive), **({"language": language} if language else {}))
    except Exception as exc:
        return _failure(exc, taken.origin, inbox, archive, taken.path)
    outcome = "processed" if result.status == "done" else _reuse_outcome(result.bundle, taken.origin)
    catalog.record_arrival(archive, _sha256_of(result.bundle), str(taken.origin), outcome)
    done = _move_done(taken.path, inbox)
    return f"{display_name(taken.origin)}: {outcome} -> {result.bundle}{done}"


def _failure(exc: BaseException, path: Path, inbox: Path, archive: Path, taken: Path | None = None) -> State:
    """Bad input is set aside; a fault of the machine leaves the file to wait in the inbox (a taken
    one is put back by its release). The error names the file where it was dropped, not where it was
    taken to (the same bytes)."""
    told = _text(exc, (taken, path) if taken else None)
    if not _machine_fault(exc):
        return _set_aside(path, inbox, archive, told, taken)
    # The machine's fault (disk, permissions, memory, a model), or the file is still being written.
    reason = f"{told}. {display_name(path)} stays in the inbox: fix this, then restart serve (or touch the file)"
    try:
        catalog.record_arrival(archive, None, str(path), f"waiting: {reason}")
    except Exception:  # the archive itself may be what is failing
        pass
    get_run_logger().error("%s", reason)
    return _failed(reason)


def _not_taken(exc: taking.NotTaken, path: Path, inbox: Path, archive: Path) -> State:
    """Swapped between its check and its move: never read; the entry (a link) set aside as refused."""
    try:
        return _refuse(exc.entry, inbox, archive, exc.reason, True, shown=path)
    finally:
        if exc.held is not None:
            exc.held.release()


def _move_done(path: Path, inbox: Path) -> str:
    """Archived: the file leaves the inbox for `inbox/done/` (a failure here loses nothing: it stays)."""
    try:
        return f" (moved to {display_path(move_out(path, inbox, DONE_DIR))})"
    except (OSError, TestimonyError) as exc:
        get_run_logger().warning("%s stays in the inbox: %s", display_name(path), exc)
        return f" (left in the inbox: {_text(exc)})"


def _refuse(path: Path, inbox: Path, archive: Path, reason: str, movable: bool, shown: Path | None = None) -> State:
    """A path that would be followed out of the inbox: never read; the link itself set aside when it can.
    `shown`: where it was dropped, when `path` is where it was taken to."""
    where, shown = "", shown or path
    if movable:
        try:
            where = f"; set aside as {display_path(set_aside(path, inbox, reason, shown))}"
        except (OSError, TestimonyError) as exc:
            where = f"; left in the inbox ({_text(exc)})"
    catalog.record_arrival(archive, None, str(shown), f"refused: {reason}")
    message = f"{display_name(shown)} refused: {reason}{where}"
    get_run_logger().error("%s", message)
    return _failed(message)


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


def _set_aside(path: Path, inbox: Path, archive: Path, reason: str, taken: Path | None = None) -> State:
    """Bad input (or a fault we cannot place): keep the file, say why, keep serving. `taken`: where the
    file is now, when it was taken from `path`."""
    try:
        where = f"set aside as {display_path(set_aside(taken or path, inbox, reason, path))}"
    except (OSError, TestimonyError) as failure:  # failed/ planted as a symlink: nothing moves through it
        where = f"left in the inbox ({_text(failure)})"
    catalog.record_arrival(archive, None, str(path), f"failed: {reason}")
    message = f"{display_name(path)} {where}: {reason}"
    get_run_logger().error("%s", message)
    return _failed(message)


def _text(exc: BaseException, renamed: tuple[Path, Path] | None = None) -> str:
    """An error as one line of text for the catalog and the console, whatever bytes a file name in it
    holds (a name that is not UTF-8 would make the catalog's insert fail); `renamed` (taken, dropped):
    the path to name instead."""
    text = str(exc) or type(exc).__name__
    if renamed:
        text = text.replace(str(renamed[0]), str(renamed[1]))
    return one_line(display_path(text))


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
