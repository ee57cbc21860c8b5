"""One lock per video around every writer: across processes, and across the threads of one process.

A video has two locks, both files under `<archive>/.locks/` named by its id (the first 12 digits of
its SHA-256, as its bundle and work folder are), always taken in this order:

- the work lock (`<id>.work.lock`): the work folder `.work/<id>/`. A run holds it from prepare
  through publish, a retranslation while it translates, `clean` while it removes the folder. A second
  run of the same video waits for it, then finds the bundle made and reuses it.
- the bundle lock (`<id>.lock`): the published bundle and its staging. `write_bundle` (a run's
  publish, a review save), export and the tidying of a killed publish hold it for seconds; `verify`
  takes it shared. A save is never held up by a run that is still transcribing: the run's publish
  checks "reviewed" again under this lock, and refuses to replace what the person saved.

Why flock: the kernel drops it when its process dies, `kill -9` included, so no stale lock file
ever blocks anyone and nothing has to guess whether a holder is alive. Two descriptors of one file
conflict even within one process, so threads would exclude each other too, but a thread would then
deadlock on a lock its own caller already holds (a save calling `write_bundle`); so a per-process
threading lock per file is taken first, and a context variable records which locks this thread (its
context) holds, so that a nested take re-enters instead.

`verify` must change no byte of what it verifies: its shared take never creates a lock file. A video
no writer ever locked has none, and is then read without one.
"""

from __future__ import annotations

import contextvars
import fcntl
import os
import threading
from pathlib import Path
from typing import Callable

from pipeline import config

DIR = ".locks"
BUNDLE, WORK = "bundle", "work"

_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("testimony_locks_held", default=frozenset())
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_TABLE = threading.Lock()


def video_id(sha256_or_id: str) -> str:
    """The 12 digits that name a video's bundle, work folder and locks."""
    return sha256_or_id[:12]


def lock_path(archive: str | Path, sha256: str, kind: str = BUNDLE) -> Path:
    """Where the video's `kind` lock lives."""
    tail = ".lock" if kind == BUNDLE else f".{kind}.lock"
    return Path(archive) / DIR / f"{video_id(sha256)}{tail}"


def _forget_in_child() -> None:
    """A forked child has only the thread that forked: locks other threads held are not its own."""
    global _TABLE
    _THREAD_LOCKS.clear()
    _TABLE = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def _thread_lock(key: str) -> threading.Lock:
    """This process's lock for one lock file (one per file, made on first use, kept: they are small)."""
    with _TABLE:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


class VideoLock:
    """One of a video's locks. Use it in a `with` (re-entrant in the same thread), or `acquire` and
    `release` by hand when the holder hands it from one thread to another (a batch's prefetch)."""

    def __init__(self, archive: str | Path, sha256: str, *, kind: str = BUNDLE, shared: bool = False) -> None:
        self.path = lock_path(os.path.realpath(archive), sha256, kind)
        self.shared = shared
        self._fd: int | None = None
        self._held = False
        self._entered: list[contextvars.Token | None] = []

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (True), or with `blocking=False` return False at once when someone holds it."""
        if self._held:
            raise RuntimeError(f"{self.path.name} is already held by this holder")
        local = _thread_lock(str(self.path))
        if not local.acquire(blocking):
            return False
        try:
            fd = self._open()
            if fd is not None and not _flock(fd, self.shared, blocking):
                os.close(fd)
                local.release()
                return False
        except BaseException:
            local.release()
            raise
        self._fd, self._held = fd, True
        return True

    def acquire_or_wait(self, say: Callable[[str], None], what: str) -> None:
        """Take the lock; when someone holds it, say so once (`what` names them), then wait for it."""
        if not self.acquire(blocking=False):
            say(f"waiting: {what}")
            self.acquire()

    def release(self) -> None:
        """Let go (closing the descriptor drops the flock); a second release does nothing."""
        if not self._held:
            return
        fd, self._fd, self._held = self._fd, None, False
        try:
            if fd is not None:
                os.close(fd)
        finally:
            _thread_lock(str(self.path)).release()

    def _open(self) -> int | None:
        """The lock file's descriptor; a shared take never creates it, and reads without one where
        there is none or it may not open it (None: no writer ever locked, or a reader outside the
        archive's owner and group, e.g. of a forensic copy)."""
        if self.shared:
            try:
                return os.open(self.path, os.O_RDONLY)
            except (FileNotFoundError, PermissionError):
                return None
        config.private_dirs(self.path.parent)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, config.file_mode())  # a group reader may lock shared

    def __enter__(self) -> "VideoLock":
        held, key = _HELD.get(), str(self.path)
        if key in held or self.shared and f"{key}#shared" in held:  # held further up this thread: re-enter
            self._entered.append(None)
            return self
        if f"{key}#shared" in held:
            raise RuntimeError(f"{self.path.name}: an exclusive take inside a shared one of the same thread")
        self.acquire()
        self._entered.append(_HELD.set(held | {f"{key}#shared" if self.shared else key}))
        return self

    def __exit__(self, *_exc: object) -> None:
        token = self._entered.pop()
        if token is not None:
            _HELD.reset(token)
            self.release()


def _flock(fd: int, shared: bool, blocking: bool) -> bool:
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def bundle_lock(archive: str | Path, sha256: str, *, shared: bool = False) -> VideoLock:
    """The lock of a video's bundle: publish, save, export, tidy (and shared: verify)."""
    return VideoLock(archive, sha256, kind=BUNDLE, shared=shared)


def work_lock(archive: str | Path, sha256: str) -> VideoLock:
    """The lock of a video's work folder: a run from prepare through publish, a retranslation, clean."""
    return VideoLock(archive, sha256, kind=WORK)
