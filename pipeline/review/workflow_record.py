"""Where the review workflow's states are kept: custody is the record, a small SQLite file the index.

Every transition appends a `state` event to the video's custody log (hash-chained, naming the account)
that carries the whole status after it, so a bundle's status is its log's last `state` event and a
bundle with none is a `draft`. That log is authoritative: transitions and `workflow.state` read it.

Queues and progress need every bundle's state at once, and reading ten thousand logs for a page is
too slow, so `<archive>/.workflow.sqlite` keeps one row per bundle a person ever moved. It is only a
copy: made again from the custody logs when it is missing (an archive copied without it, a deleted
file). A move marks its video before writing custody and clears the mark with the new row, so a
process killed between the two leaves a mark, and that video is read from custody (and healed) until
then: a reader is never listed a bundle custody no longer calls approved. Nothing in it is evidence.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from pipeline import config
from pipeline.archive import custody, locks
from pipeline.sqlitex import immediate

FILE = ".workflow.sqlite"
DRAFT, IN_REVIEW, CHECKED, APPROVED = "draft", "in_review", "checked", "approved"
STATES = (DRAFT, IN_REVIEW, CHECKED, APPROVED)
EVENT = "state"
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    sha256 TEXT PRIMARY KEY, state TEXT NOT NULL, holder TEXT, checker TEXT, approver TEXT, changed TEXT);
CREATE TABLE IF NOT EXISTS built (at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS moving (sha256 TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class Status:
    """Where a bundle stands: its state, who holds it (in review, and who held it when checked), who
    checked and who approved it, and when it last changed (None: never, a machine draft)."""

    state: str = DRAFT
    holder: str | None = None
    checker: str | None = None
    approver: str | None = None
    changed: str | None = None

    def fields(self) -> dict[str, Any]:
        """What a custody event records of the status after a transition (its time is the event's)."""
        return {"to": self.state, "holder": self.holder, "checker": self.checker, "approver": self.approver}


def status_of(events: Iterable[dict[str, Any]]) -> Status:
    """A bundle's status from its custody events: the last `state` event's, else a draft."""
    last = None
    for event in events:
        if event.get("event") == EVENT and event.get("to") in STATES:
            last = event
    if last is None:
        return Status()
    return Status(last["to"], last.get("holder"), last.get("checker"), last.get("approver"), last.get("time"))


def logged_status(archive: str | Path, sha256: str) -> Status:
    """The authoritative status: read from the video's custody log."""
    return status_of(custody.read(archive, sha256))


def index_path(archive: str | Path) -> Path:
    return Path(archive) / FILE


@contextmanager
def connect(archive: str | Path) -> Iterator[sqlite3.Connection]:
    """The index, created (with the archive's file mode) and filled from custody on first use."""
    path = index_path(archive)
    config.private_dirs(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, config.file_mode()))
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
        con.executescript(_SCHEMA)
        if con.execute("SELECT 1 FROM built").fetchone() is None:
            _build_once(con, Path(archive))
        yield con


def _build_once(con: sqlite3.Connection, archive: Path) -> None:
    """Fill a new index from the custody logs; under the write lock, so two processes that both found
    it empty build it once."""
    with immediate(con):
        if con.execute("SELECT 1 FROM built").fetchone() is None:
            _fill(con, archive)
            con.execute("INSERT INTO built (at) VALUES (datetime('now'))")


def _fill(con: sqlite3.Connection, archive: Path) -> int:
    """One row for every video whose log has a `state` event; how many."""
    con.execute("DELETE FROM states")
    folder = archive / custody.DIR
    count = 0
    for log in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        status = logged_status(archive, log.stem)
        if status.changed is not None:
            _put(con, log.stem, status)
            count += 1
    return count




def _put(con: sqlite3.Connection, sha256: str, status: Status) -> None:
    con.execute("INSERT OR REPLACE INTO states (sha256, state, holder, checker, approver, changed) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sha256, status.state, status.holder, status.checker, status.approver, status.changed))


def moving(archive: str | Path, sha256: str) -> None:
    """Mark a video's row as about to change, before its custody event is written: a crash between
    that event and `put` leaves the mark, and `states` reads that video's custody log again instead
    of trusting the row (a reader is never shown a bundle as approved that custody says is not)."""
    with connect(archive) as con:
        con.execute("INSERT OR IGNORE INTO moving (sha256) VALUES (?)", (sha256,))


def put(archive: str | Path, sha256: str, status: Status) -> None:
    """Copy a video's new status into the index (after its custody event was written); clears the mark."""
    with connect(archive) as con, immediate(con):
        _put(con, sha256, status)
        con.execute("DELETE FROM moving WHERE sha256 = ?", (sha256,))


def rebuild(archive: str | Path) -> int:
    """Make the index again from every custody log (after a crash between a custody event and its
    copy here, or to check it); returns how many bundles a person has moved."""
    with connect(archive) as con, immediate(con):
        return _fill(con, Path(archive))


def states(archive: str | Path) -> dict[str, Status]:
    """sha256 -> status of every bundle a person ever moved (any other is a draft). A row marked moving
    is read from custody instead (its move is under way, or a crash cut it short: then it is healed)."""
    with connect(archive) as con:  # marks first: a move that lands between the two reads is seen by its mark
        marked = [row[0] for row in con.execute("SELECT sha256 FROM moving")]
        found = {row[0]: Status(*row[1:]) for row in
                 con.execute("SELECT sha256, state, holder, checker, approver, changed FROM states")}
    for sha256 in marked:
        found[sha256] = _heal(archive, sha256)
    return {sha: status for sha, status in found.items() if status.changed is not None or sha not in marked}


def _heal(archive: str | Path, sha256: str) -> Status:
    """A marked video's status from its custody log, copied into the index once no move holds its lock
    (a move in progress is left to finish and clear its own mark)."""
    lock = locks.bundle_lock(archive, sha256)
    if not lock.acquire(blocking=False):
        return logged_status(archive, sha256)
    try:
        status = logged_status(archive, sha256)
        if status.changed is not None:
            put(archive, sha256, status)
        else:
            _unmark(archive, sha256)
    finally:
        lock.release()
    return status


def _unmark(archive: str | Path, sha256: str) -> None:
    """Custody has no move for this video: neither a mark nor a row stands (a draft has no row)."""
    with connect(archive) as con, immediate(con):
        con.execute("DELETE FROM moving WHERE sha256 = ?", (sha256,))
        con.execute("DELETE FROM states WHERE sha256 = ?", (sha256,))
