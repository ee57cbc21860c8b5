"""Taking a file out of the inbox before anything reads it, so what is read is what was checked.

The inbox is written by others: a file checked there could be swapped for a symbolic link (to another
witness's original, to any file this user can read) before a tool opens it by its path. So the inbox
flow first opens the entry without following a link, checks that it is a regular file, and renames it
into a private folder of its own, `inbox/.taking/<token>/` (0700, this user's). Only what landed there,
the same inode that was checked, is then hashed, probed, copied and decoded. From there it goes to
`done/` or `failed/`, or back into the inbox when the machine is at fault.

Each folder is locked (flock on the folder) while its run holds it. A kill leaves it unlocked:
`recover` puts its file back into the inbox at the next start, where the watcher announces it again; a
file whose bundle was already published is then found as already processed, never made twice.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline import failpoints
from pipeline.errors import BadInputError, TestimonyError
from pipeline.names import display_path
from pipeline.run.sidecar import is_sidecar, sidecar_path

TAKING_DIR = ".taking"
LOCKED = fcntl.LOCK_EX | fcntl.LOCK_NB


@dataclass
class Taken:
    """A file moved into its private folder: `path` is what the run reads, `origin` where it was dropped."""

    path: Path
    origin: Path
    folder: Path
    lock: int  # a descriptor of `folder`, flocked while the run holds it

    def release(self) -> Path | None:
        """Done with the folder: what is still in it (the run neither archived nor set it aside: the
        machine failed, or failed/ is unusable) goes back into the inbox; where the file went back to."""
        try:
            back = [put_back(entry, self.origin.parent) for entry in _entries(self.folder) if os.path.lexists(entry)]
            _remove_empty(self.folder)
        finally:
            os.close(self.lock)
        return back[0] if back else None


class NotTaken(TestimonyError):
    """The entry is not the regular file it was when checked (a link, swapped in): never read. `held`,
    when the entry already reached its folder: set it aside from there, then release."""

    def __init__(self, entry: Path, reason: str, held: Taken | None = None) -> None:
        super().__init__(reason)
        self.entry, self.reason, self.held = entry, reason, held


def private_folder(inbox: Path) -> Path:
    """`inbox/.taking`, made owner-only; refused when it is a link, a file, or a folder someone else
    made or may write to (they could swap what is inside)."""
    folder = inbox / TAKING_DIR
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise TestimonyError(f"{display_path(folder)} is not this user's private folder (a link, a file, or "
                             "open to others): nothing is taken through it. Remove it; serve makes it itself")
    return folder


def take(path: Path, inbox: Path) -> Taken:
    """Move the regular file `path` (with its sidecar) into a new private folder; the checked inode, or
    NotTaken. A pipe or device is BadInputError, left where it is (opening it could block)."""
    checked = _check_regular(path)
    failpoints.reached("inbox:checked")  # where a swap would land if the file were reopened by path
    folder, lock = _new_folder(private_folder(inbox))
    target = folder / path.relative_to(inbox)
    try:
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.rename(path, target)
        moved = os.lstat(target)
        if (moved.st_dev, moved.st_ino) != checked:
            raise NotTaken(target, "it was replaced between its check and its use (by a symbolic link or "
                                   "another file); it was not read", Taken(target, path, folder, lock))
        if os.path.lexists(sidecar_path(path)):
            os.rename(sidecar_path(path), sidecar_path(target))
    except NotTaken:
        raise
    except BaseException:
        Taken(target, path, folder, lock).release()
        raise
    failpoints.reached("inbox:taken")
    return Taken(target, path, folder, lock)


def _check_regular(path: Path) -> tuple[int, int]:
    """(device, inode) of the regular file `path`, opened without following a link."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise BadInputError(path, "is not a regular file (a pipe, socket or device)",
                            "Copy the recording itself into a file and give that.")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotTaken(path, "it is a symbolic link; it was not followed (copy the file itself into the "
                                 "inbox)") from None
        raise
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotTaken(path, "it was replaced by something that is not a regular file; it was not read")
    return st.st_dev, st.st_ino


def _new_folder(parent: Path) -> tuple[Path, int]:
    """A fresh `<parent>/<token>/`, locked; retried if `recover` removed it before the lock was taken."""
    while True:
        folder = parent / secrets.token_hex(8)
        os.mkdir(folder, 0o700)
        lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.fstat(lock).st_nlink > 0:
            return folder, lock
        os.close(lock)


def put_back(entry: Path, where: Path) -> Path:
    """`entry` (and its sidecar) into the inbox folder `where` under a free name, never over a file
    dropped there since; where it landed."""
    if os.path.islink(where) or not where.is_dir():  # a language folder replaced by a link: the inbox itself
        where = where.parent
    target = free_name(where, entry.name)
    _rename_new(entry, target)
    if os.path.lexists(sidecar_path(entry)):
        _rename_new(sidecar_path(entry), free_name(where, sidecar_path(target).name))
    return target


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `stem-2.ext`, `stem-3.ext`... when that (or its sidecar, or a reason file) is taken."""
    target, n, path = folder / name, 1, Path(name)
    while any(os.path.lexists(p) for p in (target, sidecar_path(target), Path(f"{target}.reason.txt"))):
        n += 1
        target = folder / f"{path.stem}-{n}{path.suffix}"
    return target


def _rename_new(source: Path, target: Path) -> None:
    """Rename without replacing a file that appeared at `target` meanwhile (a hard link fails if it exists)."""
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: the free name was checked just before
        os.rename(source, target)
        return
    os.unlink(source)


def recover(inbox: Path) -> list[Path]:
    """Files a killed run left in `inbox/.taking/`, put back into the inbox; their new paths. Folders a
    live run holds (locked) are left alone."""
    parent = inbox / TAKING_DIR
    if not stat.S_ISDIR(_lstat_mode(parent)):
        return []
    back: list[Path] = []
    for folder in sorted(parent.iterdir()):
        if not folder.is_dir() or folder.is_symlink():
            continue
        lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fcntl.flock(lock, LOCKED)
        except BlockingIOError:
            os.close(lock)
            continue  # a run in progress holds it
        _undo_recovered(folder, lock, inbox, back)
    return back


def _undo_recovered(folder: Path, lock: int, inbox: Path, back: list[Path]) -> None:
    try:
        for entry in _entries(folder):
            if os.path.lexists(entry):  # a sidecar has gone with its video
                back.append(put_back(entry, inbox if entry.parent == folder else inbox / entry.parent.name))
        _remove_empty(folder)
    finally:
        os.close(lock)


def _entries(folder: Path) -> list[Path]:
    """The files in a taking folder (one level of language folder deep), videos before their sidecars,
    so a sidecar moves with its video; a sidecar left alone comes after."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            found += sorted(entry.iterdir())
        else:
            found.append(entry)
    return sorted(found, key=lambda p: is_sidecar(p))


def _remove_empty(folder: Path) -> None:
    """The folder and its language subfolder, if nothing is left in them (something left stays)."""
    if not os.path.isdir(folder):
        return
    for sub in os.listdir(folder):
        try:
            os.rmdir(folder / sub)
        except OSError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0
