"""Who is asking the workspace, and what their role lets them see and do.

A person signs in on the sign-in page and carries a session cookie (HttpOnly, SameSite=Strict, Secure
under TLS); a script sends its person's own name and password as HTTP basic auth instead. Either way the
server, never the request body, decides who the author of a change is. A basic-auth answer is kept for a
few minutes (keyed by a hash of the header), so a script's every request does not pay scrypt's cost;
a password change, a disable or a lock ends that at once, as it ends sessions.

The roles (the issue's table, in one place): an admin does everything; a reviewer reads, plays and edits
bundles in their languages; a reader reads approved transcripts and their documents, nothing else.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from pipeline.review import accounts, sessions
from pipeline.review.accounts import Account, SignInRefused

BASIC_TTL = 300.0  # seconds a checked basic-auth header is trusted without scrypt


class Forbidden(Exception):
    """A 403: the person is known, their role does not allow this. The message names no file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Gate:
    archive: Path
    secure: bool = False  # served over TLS: the cookie is Secure too
    _basic: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def who(self, request: Request) -> Account | None:
        """The account a request signs in with (cookie first, then basic auth), or None.
        A wrong basic-auth password raises SignInRefused, counted like a bad sign-in."""
        account = sessions.lookup(self.archive, request.cookies.get(sessions.COOKIE))
        if account is not None:
            return account
        header = request.headers.get("authorization", "")
        return self._basic_account(header) if header.lower().startswith("basic ") else None

    def _basic_account(self, header: str) -> Account:
        key = hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()
        with self._lock:
            cached = self._basic.get(key)
        if cached is not None and (account := self._still_good(*cached)) is not None:
            return account
        name, password = _decode_basic(header)
        checked_at = time.time()  # before the check: a password changed meanwhile still ends the entry
        account = accounts.authenticate(self.archive, name, password)
        with self._lock:
            self._basic[key] = (account.name, checked_at)
        return account

    def _still_good(self, name: str, since: float) -> Account | None:
        account = accounts.get(self.archive, name)
        fresh = time.time() - since < BASIC_TTL
        if account is None or account.disabled or account.locked or account.changed > since or not fresh:
            return None
        return account

    def cookie(self, token: str, max_age: int | None) -> str:
        """The Set-Cookie value for a session token (max_age 0 clears it)."""
        parts = [f"{sessions.COOKIE}={token}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def _decode_basic(header: str) -> tuple[str, str]:
    import base64
    import binascii

    try:
        name, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise SignInRefused(accounts.REFUSED) from None
    return name, password


def may_read(account: Account, language: str | None, approved: bool) -> bool:
    """Admins read everything; reviewers their languages' bundles; readers approved transcripts."""
    if account.role == "admin":
        return True
    if account.role == "reviewer":
        return language in account.languages
    return approved


def may_play(account: Account, language: str | None) -> bool:
    """The original video is witness evidence: reviewers of its language and admins only."""
    return account.role == "admin" or (account.role == "reviewer" and language in account.languages)


def need(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(f"your role does not allow you to {what}")


def trail(archive: Path, who: str, action: str, bundle: str | None = None, **detail: object) -> None:
    """One line of the access log: who saw or did what (`pipeline.archive.access`)."""
    from pipeline.archive import access

    access.record(archive, who, action, bundle=bundle, **detail)
