"""The service's credential and who may reach the workspace from where.

People sign in with their own accounts (`accounts`, `sessions`). What is left here is the one
credential that is not a person's: Prefect's basic auth, which `serve` and the flows use to talk to the
archive's own Prefect server. Admins may read it (`<archive>/.prefect/service-credential`, owner-only,
or `TESTIMONY_AUTH=user:password` when they set it); reviewers and readers are never given it, so
their accounts open the workspace and nothing of Prefect. The password is never printed or logged.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic, config
from pipeline.errors import TestimonyError

FILE = ".credentials"  # before accounts: one shared user:password for everything (converted at start)
SERVICE_FILE = Path(".prefect") / "service-credential"
SERVICE_USER = "service"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    """Where an archive from before accounts kept its shared credentials."""
    return Path(archive) / FILE


def service_file(archive: Path) -> Path:
    return Path(archive) / SERVICE_FILE


def service_credentials(archive: Path) -> Credentials:
    """TESTIMONY_AUTH, else the archive's service credential, made (0600) at first use."""
    given = os.environ.get("TESTIMONY_AUTH")
    if given is not None:
        return parse(given, "TESTIMONY_AUTH")
    path = service_file(archive)
    if path.is_file():
        return parse(path.read_text(encoding="utf-8").strip(), str(path))
    config.private_dirs(Path(archive))
    path.parent.mkdir(mode=0o700, exist_ok=True)
    made = Credentials(SERVICE_USER, secrets.token_urlsafe(18))
    atomic.write_text(path, f"{made.user}:{made.password}\n", mode=0o600)
    return made


def parse(text: str, where: str) -> Credentials:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise TestimonyError(f"{where}: expected user:password, with both parts set")
    return Credentials(user, password)


@dataclass(frozen=True)
class Exposure:
    """How a server is reached: its address and, when it leaves this machine, TLS or a person's
    explicit choice to go without."""

    host: str = "127.0.0.1"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    public_urls: tuple[str, ...] = ()  # how people reach it, where that is not the bound address

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS: served with TLS, or reached through an https:// --public-url (a TLS
        proxy in front of 127.0.0.1), where a cookie sent over plain HTTP would leave the session open."""
        return self.tls or any(url.strip().lower().startswith("https:") for url in self.public_urls)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def origins(self, port: int) -> tuple[str, ...]:
        """Every origin a page of ours may send a change from: the bound address (first: it is the one
        printed), this machine's other loopback names when bound to one, and each `--public-url` (a
        host name, or a TLS proxy in front). Any other Origin is another site's page."""
        bound = f"{self.scheme}://{_url_host(self.host)}:{port}"
        local = [f"{self.scheme}://{_url_host(h)}:{port}" for h in LOOPBACK] if self.host in LOOPBACK else []
        found = [bound, *local, *(public_origin(url) for url in self.public_urls)]
        return tuple(dict.fromkeys(found))

    def check(self) -> None:
        """Refuse, before anything listens, an address other machines reach without TLS, a
        certificate without its key (or the other way round), and a --public-url that is no address."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise TestimonyError("give both --tls-cert and --tls-key (a certificate and its private key)")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not Path(path).is_file():
                raise TestimonyError(f"{path}: no such file: give the PEM file of the certificate or its key")
        for url in self.public_urls:
            public_origin(url)
        if self.host not in LOOPBACK and not self.tls and not self.insecure_http:
            raise TestimonyError(f"--host {self.host} lets other machines in: passwords and testimony would cross "
                                 "the network in clear; give --tls-cert and --tls-key, or --insecure-http on purpose")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def public_origin(url: str) -> str:
    """`https://name.example:8443/` -> the Origin a browser sends from it (default ports left out, as
    browsers do); anything that is not a plain http(s) address is refused, naming the option."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise TestimonyError(f"--public-url {url}: give the address people open, e.g. https://testimony.example:4300")
    try:
        number = parts.port
    except ValueError:
        raise TestimonyError(f"--public-url {url}: the port is not a port number (1 to 65535)") from None
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{number}" if number and number != default else ""
    return f"{parts.scheme}://{_url_host(parts.hostname)}{port}"
