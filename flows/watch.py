"""The watch folder: a file that has finished arriving in the inbox becomes one Prefect event.

Prefect has no file-system trigger, so a watchdog observer reports files closed after writing or moved
in, and each is announced only once its size has stopped changing (a slow copy over a network share
closes and reopens, or a share's client never reports the close at all). The `process-inbox-file`
deployment's trigger turns each event into a flow run, so every run shows in the UI with the
automation that started it. Files already there when the watcher starts are announced too; a
processed file has left for `inbox/done/`, so a restart announces only what is still to do.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from pipeline.names import display_name
from pipeline.run.sidecar import is_sidecar

from .service_flows import DONE_DIR, FAILED_DIR, language_folder, to_payload

ARRIVED = "testimony.video.arrived"
LANGUAGE_FOLDERS = ("kk", "ug")  # made by serve: Whisper cannot tell Uyghur, so a user says it here
Announce = Callable[[Path], None]


def emit_arrival(path: Path) -> None:
    """The event the deployment trigger waits for; the path travels in the payload."""
    from prefect.events import emit_event

    # One resource per path and size: a file replaced under the same name is a new arrival.
    digest = hashlib.sha256(f"{path}|{path.stat().st_size}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    emit_event(event=ARRIVED, resource={"prefect.resource.id": f"testimony.inbox.{digest}",
                                        "prefect.resource.name": os.fsencode(path.name).decode("utf-8", "replace")},
               payload={"path": to_payload(path)})  # a name that is not UTF-8 travels as its bytes


def _candidate(path: Path, inbox: Path) -> bool:
    """Files of the inbox and of its language folders (`inbox/kk/`): not our failed/ and done/ folders,
    not a video's sidecar (read with the video), not hidden or partial downloads. A symlink is a
    candidate: its run refuses it with a reason and sets the link aside, never following it."""
    folder_ok = path.parent == inbox or (path.parent.parent == inbox and language_folder(path.parent.name))
    return (folder_ok and not path.name.startswith(".") and not is_sidecar(path)
            and not path.name.endswith((".part", ".partial", ".crdownload", ".tmp"))
            and path.name not in (FAILED_DIR, DONE_DIR))


class InboxWatcher(FileSystemEventHandler):
    """Collects paths from watchdog, waits until each is stable, then announces it exactly once."""

    def __init__(self, inbox: Path, announce: Announce = emit_arrival, *, settle_seconds: float = 2.0,
                 poll_seconds: float = 0.5) -> None:
        self.inbox = inbox.resolve()
        self.announce = announce
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self._pending: dict[Path, tuple[int, float]] = {}  # path -> (size last seen, since when)
        self._announced: dict[Path, tuple[int, int]] = {}  # path -> (size, mtime_ns) when announced
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = Observer()
        self._thread = threading.Thread(target=self._settle_loop, name="inbox-settle", daemon=True)

    # watchdog callbacks: remember the path, decide later
    def on_closed(self, event: FileSystemEvent) -> None:
        self._note(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._note(event.dest_path)

    def on_created(self, event: FileSystemEvent) -> None:
        self._note(event.src_path)  # a copy that never reports its close still settles by size

    def on_modified(self, event: FileSystemEvent) -> None:
        self._note(event.src_path)

    def on_attrib(self, event: FileSystemEvent) -> None:
        self._note(event.src_path)  # touched (a waiting file after its fault was fixed): look again

    def _note(self, raw: str | bytes) -> None:
        path = Path(os.fsdecode(raw))
        if _candidate(path, self.inbox) and not (path.is_dir() and not path.is_symlink()):
            with self._lock:
                self._pending[path] = (-1, time.monotonic())

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        for code in LANGUAGE_FOLDERS:
            (self.inbox / code).mkdir(exist_ok=True)
        self._observer.schedule(self, str(self.inbox), recursive=True)
        self._observer.start()
        folders = [self.inbox, *(p for p in sorted(self.inbox.iterdir())
                                 if p.is_dir() and not p.is_symlink() and language_folder(p.name))]
        for folder in folders:  # what arrived while nobody was watching
            for path in sorted(folder.iterdir()):
                if path.is_file() or path.is_symlink():
                    self._note(str(path))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(timeout=10)
        self._thread.join(timeout=10)

    def _settle_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            for path in self._ready():
                try:
                    self.announce(path)
                except Exception as exc:  # the server may be restarting: try again next round
                    print(f"watch: could not announce {display_name(path)} ({exc}); retrying", flush=True)
                    with self._lock:
                        self._pending[path] = (-1, time.monotonic())

    def _ready(self) -> list[Path]:
        """Paths whose size and mtime held still for `settle_seconds`, not yet announced in that state."""
        now, ready = time.monotonic(), []
        with self._lock:
            for path, (size, since) in list(self._pending.items()):
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    del self._pending[path]  # moved away or deleted before it settled
                    continue
                if stat.S_ISDIR(st.st_mode):  # a folder made in the inbox (a language folder) is no video
                    del self._pending[path]
                    continue
                current = st.st_size
                if current != size:
                    self._pending[path] = (current, now)
                    continue
                if now - since < self.settle_seconds:
                    continue
                del self._pending[path]
                state = (st.st_size, st.st_mtime_ns)
                if self._announced.get(path) != state:
                    self._announced[path] = state
                    ready.append(path)
        return ready
