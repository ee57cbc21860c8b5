"""The workspace's credentials: generated at first start and kept owner-only in the archive.

`TESTIMONY_AUTH=user:password` sets them instead. Every request must present them (HTTP basic auth,
which a browser asks for once per session); the password is never printed or logged.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic, config
from pipeline.errors import TestimonyError

FILE = ".credentials"
USER = "reviewer"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = ""

    def __repr__(self) -> str:  # a stray print or log line never shows the secret
        return f"Credentials(user={self.user!r}, password=***)"

    @property
    def auth_string(self) -> str:
        """`user:password`, as Prefect's basic auth takes it."""
        return f"{self.user}:{self.password}"


def credentials_file(archive: Path) -> Path:
    return Path(archive) / FILE


def workspace_credentials(archive: Path) -> Credentials:
    """TESTIMONY_AUTH, else the archive's credentials file, made (0600) at first use."""
    given = os.environ.get("TESTIMONY_AUTH")
    if given is not None:
        return parse(given, "TESTIMONY_AUTH")
    path = credentials_file(archive)
    if path.is_file():
        return parse(path.read_text(encoding="utf-8").strip(), str(path))
    config.private_dirs(archive)
    made = Credentials(USER, secrets.token_urlsafe(18))
    atomic.write_text(path, f"{made.user}:{made.password}\n", mode=0o600)
    return made


def parse(text: str, where: str) -> Credentials:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise TestimonyError(f"{where}: expected user:password, with both parts set")
    return Credentials(user, password)


def matches(expected: Credentials, header: str | None) -> bool:
    """Whether an Authorization header presents exactly these credentials (compared in constant time)."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user.encode(), expected.user.encode()) & secrets.compare_digest(
        password.encode(), expected.password.encode())


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def credentials_for(archive: Path, host: str) -> Credentials:
    """The archive's credentials for a server bound to `host`. Another address than this machine's own
    is served only with credentials a person set (TESTIMONY_AUTH, or a credentials file already in the
    archive), never with ones made up on the spot that nobody has read."""
    if host not in LOOPBACK and not os.environ.get("TESTIMONY_AUTH") and not credentials_file(archive).is_file():
        raise TestimonyError(f"--host {host} would let other machines in: set TESTIMONY_AUTH=user:password first "
                             f"(or start once on 127.0.0.1 and share the credentials in {credentials_file(archive)})")
    return workspace_credentials(archive)
