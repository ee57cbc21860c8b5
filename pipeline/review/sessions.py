"""Signed-in sessions: what the sign-in page's cookie stands for, kept in the accounts database.

The cookie holds a random token; the database keeps only its SHA-256, so a copy of the archive opens
no session. A session ends at sign-out, after `IDLE` without a request, after `LIFETIME` whatever
happens, and when its account is disabled, locked, reset or given a new password (a lookup re-checks
all of these, so nothing else has to remember to end sessions).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from contextlib import closing
from pathlib import Path

from pipeline.review import accounts

IDLE = 30 * 60.0  # seconds without a request
LIFETIME = 12 * 3600.0  # seconds from sign-in, however busy
COOKIE = "testimony_session"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, started REAL NOT NULL, seen REAL NOT NULL
)"""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def _connect(archive: Path):
    conn = accounts.connect(archive)
    conn.execute(SCHEMA)
    return conn


def start(archive: Path, name: str, *, now: float | None = None) -> str:
    """A new session for an account that has just signed in; returns the cookie's token."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with closing(_connect(archive)) as conn:
        conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (_digest(token), name, now, now))
    return token


def lookup(archive: Path, token: str | None, *, now: float | None = None) -> accounts.Account | None:
    """The account a cookie's token signs in, refreshing its idle clock; None when it is unknown,
    expired, or its account may no longer sign in (the expired row is removed)."""
    if not token:
        return None
    now = time.time() if now is None else now
    with closing(_connect(archive)) as conn:
        row = conn.execute("SELECT name, started, seen FROM sessions WHERE digest = ?", (_digest(token),)).fetchone()
        if row is None:
            return None
        name, started, seen = row
        account = accounts.get(archive, name)
        if now - seen > IDLE or now - started > LIFETIME or account is None or account.disabled or account.locked \
                or started < account.changed:
            conn.execute("DELETE FROM sessions WHERE digest = ?", (_digest(token),))
            return None
        conn.execute("UPDATE sessions SET seen = ? WHERE digest = ?", (now, _digest(token)))
    return account


def end(archive: Path, token: str | None) -> None:
    """Sign-out: the token opens nothing from now on."""
    if token:
        with closing(_connect(archive)) as conn:
            conn.execute("DELETE FROM sessions WHERE digest = ?", (_digest(token),))
