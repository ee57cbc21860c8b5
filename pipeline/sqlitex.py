"""What every SQLite file of the archive shares (the catalog, the workflow's index)."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def immediate(con: sqlite3.Connection) -> Iterator[None]:
    """A write transaction. BEGIN IMMEDIATE takes the write lock up front, so the busy timeout applies
    instead of a deadlock between two readers that both want to write."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
