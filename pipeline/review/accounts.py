"""People, not a shared password: the archive's accounts, their roles and languages.

Kept in `<archive>/.accounts.db` (SQLite, owner-only) so they travel with the archive and nothing about
the team lives outside it. A password is never stored: only a salted scrypt hash (memory-hard, in the
standard library), with its cost parameters beside it so they can be raised later without breaking old
hashes. A new or reset password is made here, shown once by the caller, and must be replaced at first
sign-in. Repeated bad passwords make the next try wait longer and longer, then lock the account until
an admin resets it: a guessing script gets a handful of tries, a person who mistypes loses seconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline import config
from pipeline.errors import TestimonyError

FILE = ".accounts.db"
ROLES = ("admin", "reviewer", "reader")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}  # about 32 MiB and a tenth of a second per try on these CPUs
FREE_TRIES = 3  # bad passwords before any wait
LOCK_AFTER = 10  # bad passwords in a row that lock the account until an admin resets it
MAX_WAIT = 900.0  # seconds: the longest wait before the lock

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, languages TEXT NOT NULL DEFAULT '',
    salt BLOB NOT NULL, hash BLOB NOT NULL, cost TEXT NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 1, disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0, wait_until REAL NOT NULL DEFAULT 0, created TEXT NOT NULL,
    changed REAL NOT NULL DEFAULT 0
)"""


class AccountError(TestimonyError):
    """A request about accounts that cannot be met (an unknown name, a bad role): exit status 2."""


class SignInRefused(TestimonyError):
    """Wrong name or password, a disabled or locked account, or a try before the wait is over.

    The message is the same for an unknown name and a wrong password, so it tells a guesser nothing;
    `retry_after` is how long to wait (0 when waiting does not help)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    languages: tuple[str, ...]
    disabled: bool
    must_change: bool
    locked: bool
    changed: float = 0.0  # when its password was last set (time.time())

    def can_edit(self, language: str) -> bool:
        """Admins edit every bundle; a reviewer only those in their languages; a reader none."""
        return self.role == "admin" or (self.role == "reviewer" and language in self.languages)


def db_path(archive: Path) -> Path:
    return Path(archive) / FILE


def connect(archive: Path) -> sqlite3.Connection:
    """The accounts database, made owner-only on first use (sessions keep their table in it too)."""
    path = db_path(archive)
    if not path.exists():
        config.private_dirs(Path(archive))
        path.touch(mode=0o600)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute(SCHEMA)
    return conn


def _hash(password: str, salt: bytes, cost: dict[str, int]) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=128 * 1024 * 1024, dklen=32, **cost)


def _cost_text(cost: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in cost.items())


def _cost(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in text.split(","))}


def new_password() -> str:
    """A one-time password: 120 random bits, easy to copy (no characters that need quoting)."""
    return secrets.token_urlsafe(15)


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise AccountError(f"{name!r} is not a usable account name: 1 to 32 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")


def _check_role(role: str, languages: tuple[str, ...]) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role == "reviewer" and not languages:
        raise AccountError("a reviewer checks transcripts in their languages: give --languages, e.g. kk or kk,ug")


def _secret_row(password: str) -> tuple[bytes, bytes, str, float]:
    """Salt, hash, cost and when it changed: sessions started before then no longer count."""
    salt = secrets.token_bytes(16)
    return salt, _hash(password, salt, SCRYPT), _cost_text(SCRYPT), time.time()


def add(archive: Path, name: str, role: str, languages: tuple[str, ...] = (), password: str | None = None,
        *, must_change: bool = True) -> str:
    """Create an account and return its password (made here unless given). Refuses a name in use."""
    _check_name(name)
    _check_role(role, languages)
    password = password or new_password()
    with closing(connect(archive)) as conn:
        try:
            row = (name, role, ",".join(languages), *_secret_row(password), int(must_change), _now_text())
            conn.execute("INSERT INTO accounts (name, role, languages, salt, hash, cost, changed, must_change, "
                         "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError:
            raise AccountError(f"an account called {name!r} exists already (reset it with `testimony users "
                               f"reset {name}`)") from None
    return password


def reset(archive: Path, name: str, password: str | None = None) -> str:
    """A new one-time password for `name`; clears failures, the lock and a disable."""
    password = password or new_password()
    with closing(connect(archive)) as conn:
        done = conn.execute("UPDATE accounts SET salt = ?, hash = ?, cost = ?, changed = ?, must_change = 1, "
                            "disabled = 0, failures = 0, wait_until = 0 WHERE name = ?", (*_secret_row(password), name))
        _found(done, name)
    return password


def set_password(archive: Path, name: str, password: str) -> None:
    """The person's own new password, replacing a one-time one (no longer must change)."""
    if len(password) < 10:
        raise AccountError("a password needs at least 10 characters")
    with closing(connect(archive)) as conn:
        _found(conn.execute("UPDATE accounts SET salt = ?, hash = ?, cost = ?, changed = ?, must_change = 0 "
                            "WHERE name = ?",
                            (*_secret_row(password), name)), name)


def disable(archive: Path, name: str) -> None:
    """The account can no longer sign in; its revisions and history stay as they are."""
    with closing(connect(archive)) as conn:
        _found(conn.execute("UPDATE accounts SET disabled = 1 WHERE name = ?", (name,)), name)


def _found(cursor: sqlite3.Cursor, name: str) -> None:
    if cursor.rowcount == 0:
        raise AccountError(f"no account called {name!r} (see `testimony users list`)")


def _account(row: tuple) -> Account:
    name, role, languages, disabled, must_change, failures, changed = row
    return Account(name, role, tuple(x for x in languages.split(",") if x), bool(disabled), bool(must_change),
                   failures >= LOCK_AFTER, changed)


_COLUMNS = "name, role, languages, disabled, must_change, failures, changed"


def accounts(archive: Path) -> list[Account]:
    """Every account, by name."""
    if not db_path(archive).exists():
        return []
    with closing(connect(archive)) as conn:
        return [_account(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY name")]


def get(archive: Path, name: str) -> Account | None:
    """The account called `name`, or None; asking about an archive with no accounts creates nothing."""
    if not db_path(archive).exists():
        return None
    with closing(connect(archive)) as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name = ?", (name,)).fetchone()
    return _account(row) if row else None


def wait_after(failures: int) -> float:
    """Seconds before the next try after this many bad passwords in a row: none for the first few,
    then doubling from 2 s, capped; from LOCK_AFTER on the account is locked instead."""
    if failures < FREE_TRIES or failures >= LOCK_AFTER:
        return 0.0
    return min(2.0 ** (failures - FREE_TRIES + 1), MAX_WAIT)


_DUMMY_SALT = secrets.token_bytes(16)
REFUSED = "wrong account name or password"
LOCKED = "too many wrong passwords for this name: ask an admin to reset the account"
DISABLED = "this account is disabled: ask an admin"

TRIES_LOCK = ".accounts.tries.lock"  # beside the database: one sign-in try at a time per archive
MAX_STRANGERS = 10_000  # unknown names remembered per process; the oldest go first
_STRANGERS: dict[str, tuple[int, float]] = {}  # keyed hash of a name no account has -> (failures, wait_until)
_STRANGER_KEY = secrets.token_bytes(32)
_STRANGERS_LOCK = threading.Lock()  # the tries lock is per archive; two archives' threads share the dict


def authenticate(archive: Path, name: str, password: str, *, now: float | None = None) -> Account:
    """The account whose name and password these are, or SignInRefused.

    Tries are taken one at a time per archive, under a lock file beside the database rather than the
    database's own write lock: the counts cannot be raced, a right password is never refused because of
    another try in flight, and a flood of guesses does not hold up the sessions kept in the same file.
    An unknown name waits and locks like an account, counted in this process's memory under a keyed
    hash (a password typed into the name field is written nowhere), and costs the same scrypt work; a
    refusal never says whether the account exists, is disabled or is locked unless the right password
    was given: names cannot be discovered by trying them."""
    now = time.time() if now is None else now
    with _one_try_at_a_time(archive):
        row = _row(archive, name)
        failures, wait_until = (row[5], row[10]) if row else _STRANGERS.get(_tag(archive, name), (0, 0.0))
        _refuse_early(failures, wait_until, now)
        if not _right(row, password):
            _failed(archive, name, row is not None, failures + 1, now)
            raise SignInRefused(REFUSED, wait_after(failures + 1))
        _cleared(archive, name, row[8])
    account = _account(row[:7])
    if account.disabled:
        raise SignInRefused(DISABLED)
    return account


@contextmanager
def _one_try_at_a_time(archive: Path) -> Iterator[None]:
    """An exclusive flock on the archive's tries lock (per open file, so threads queue as processes do)."""
    config.private_dirs(Path(archive))
    fd = os.open(Path(archive) / TRIES_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _row(archive: Path, name: str) -> tuple | None:
    with closing(connect(archive)) as conn:
        return conn.execute(f"SELECT {_COLUMNS}, salt, hash, cost, wait_until FROM accounts WHERE name = ?",
                            (name,)).fetchone()


def _refuse_early(failures: int, wait_until: float, now: float) -> None:
    """Past the lock or inside a wait: refused with the password unchecked, so it tells a guesser nothing."""
    if failures >= LOCK_AFTER:
        raise SignInRefused(LOCKED)
    if now < wait_until:
        raise SignInRefused(f"too many wrong passwords: wait {wait_until - now:.0f} s", wait_until - now)


def _right(row: tuple | None, password: str) -> bool:
    """The scrypt check (the same work for an unknown name), outside any database lock."""
    if row is None:
        _hash(password, _DUMMY_SALT, SCRYPT)
        return False
    salt, stored, cost = row[7:10]
    return secrets.compare_digest(_hash(password, salt, _cost(cost)), stored)


def _failed(archive: Path, name: str, known: bool, failures: int, now: float) -> None:
    wait_until = now + wait_after(failures)
    if not known:
        with _STRANGERS_LOCK:
            if len(_STRANGERS) >= MAX_STRANGERS:
                del _STRANGERS[next(iter(_STRANGERS))]
            _STRANGERS[_tag(archive, name)] = (failures, wait_until)
        return
    with closing(connect(archive)) as conn:
        conn.execute("UPDATE accounts SET failures = ?, wait_until = ? WHERE name = ?", (failures, wait_until, name))


def _cleared(archive: Path, name: str, stored: bytes) -> None:
    """The right password: failures forgotten. A reset or new password that landed during the check
    leaves no row with the hash checked, and the try is refused (the old password no longer opens)."""
    with closing(connect(archive)) as conn:
        done = conn.execute("UPDATE accounts SET failures = 0, wait_until = 0 WHERE name = ? AND hash = ?",
                            (name, stored))
    if done.rowcount == 0:
        raise SignInRefused(REFUSED)


def _tag(archive: Path, name: str) -> str:
    """An unknown name, per archive, under this process's random key."""
    said = f"{os.path.realpath(archive)}\0{name}".encode("utf-8", "replace")
    return hmac.new(_STRANGER_KEY, said, "sha256").hexdigest()


def _now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def migrate_credentials(archive: Path) -> str | None:
    """An archive from before accounts: its `.credentials` (user:password) becomes an admin account with
    that password, so scripts and people who used it keep working, and the plain-text file is removed.
    Returns the account name, or None when there was nothing to convert."""
    from pipeline.review.auth import credentials_file, parse

    path = credentials_file(archive)
    if not path.is_file():
        return None
    old = parse(path.read_text(encoding="utf-8").strip(), str(path))
    if get(archive, old.user) is None:
        add(archive, old.user, "admin", password=old.password, must_change=False)
    path.unlink()
    return old.user


def first_admin(archive: Path, name: str = "admin") -> str | None:
    """On the first start of an archive with no accounts (after converting any `.credentials`), make one
    admin and return its one-time password for the caller to show once; None when accounts exist."""
    migrate_credentials(archive)
    if accounts(archive):
        return None
    try:
        return add(archive, name, "admin")
    except AccountError:  # another process's first start made it a moment ago
        return None


def first_start(archive: Path, announce) -> None:
    """What `serve` and `review` do before they listen: convert `.credentials`; in an archive with no
    accounts, make the first admin, from TESTIMONY_AUTH when an archivist set it (a scripted setup),
    else with a one-time password `announce` shows this once."""
    import os

    if (converted := migrate_credentials(archive)) is not None:
        announce(f"accounts: the old shared credentials are now the admin account {converted!r} (the plain-text "
                 "file is removed); give each person their own account with `testimony users add`")
    given = os.environ.get("TESTIMONY_AUTH")
    if given and not accounts(archive):
        from pipeline.review.auth import parse

        made = parse(given, "TESTIMONY_AUTH")
        try:
            add(archive, made.user, "admin", password=made.password, must_change=False)
        except AccountError:  # another process's first start made it a moment ago
            return
        announce(f"accounts: first admin {made.user!r}, with the password TESTIMONY_AUTH gives")
    elif (password := first_admin(archive)) is not None:
        announce(f"accounts: first admin 'admin', one-time password {password} (shown this once; it must be "
                 "changed at the first sign-in)")
