"""Start, or reuse, a local Prefect server: loopback only, telemetry off, state under our data folder.

An archive owns the server it started. Run parameters, logs and artifacts name witnesses, so a serve
must never hand them to a server holding another archive's runs: a server already answering on the
port is reused only when it proves it is this archive's. The proof is a random token kept in
`<archive>/.prefect/owner-token` (owner-only) that serve stores in the server it starts as a Prefect
variable; on reuse the variable must be readable with this archive's credentials and equal the token.
Anything else on the port (another archive's server, one with other credentials, another program) is
refused in one line naming `--port`.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline import atomic, config
from pipeline.errors import TestimonyError

PRIVATE_SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_V2_ENABLED": "false",  # the V1 UI makes no outside request
    "DO_NOT_TRACK": "1",
}


@dataclass
class Server:
    api_url: str
    ui_url: str
    home: Path
    process: subprocess.Popen | None  # None: someone else's server, reused
    startup_seconds: float

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


PREFECT_DIR = ".prefect"  # Prefect's home inside the archive serve works on


def results_dir(archive: Path) -> Path:
    """Where the transcribe and translate tasks persist their results (segments, English): inside the
    archive whatever Prefect's home is (a `testimony` flow run against another server, a worker on
    another machine), so witness text never lands in `~/.prefect` or a shared home. Serve's own home
    is `<archive>/.prefect`, whose default results folder this is."""
    return Path(archive) / PREFECT_DIR / "storage"


def prefect_home(archive: Path | None = None) -> Path:
    """`PREFECT_HOME` when the user set it; else `<archive>/.prefect` for an archive's server (its
    database holds run parameters, artifacts and logs that name witnesses: they stay in the one folder
    a team protects); else our data folder."""
    if os.environ.get("PREFECT_HOME"):
        return Path(os.environ["PREFECT_HOME"])
    return Path(archive) / PREFECT_DIR if archive is not None else config.data_dir() / "prefect"


OWNER_TOKEN = "owner-token"  # in <archive>/.prefect/, whatever PREFECT_HOME says
OWNER_VARIABLE = "testimony_archive_owner"  # the Prefect variable holding that token in the archive's server


class PortTaken(TestimonyError):
    """Something other than this archive's server holds a port serve needs."""


def port_taken(host: str, port: int, option: str, holder: str = "another program") -> PortTaken:
    return PortTaken(f"port {port} on {host} is taken by {holder}; pass {option} with a free port")


def check_free(host: str, port: int, option: str) -> None:
    """Refuse now, in one line, a port something already listens on (a server would only log it later)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise port_taken(host, port, option) from None
            raise


def owner_token(archive: Path) -> str:
    """This archive's token, made (random, owner-only) the first time a server is started for it."""
    path = Path(archive) / PREFECT_DIR / OWNER_TOKEN
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        config.private_dirs(path.parent)
        token = secrets.token_hex(32)
        atomic.write_text(path, token + "\n", mode=0o600)
        return token


def _auth(auth_string: str | None) -> tuple[str, str] | None:
    return tuple(auth_string.split(":", 1)) if auth_string else None  # type: ignore[return-value]


def owned(api_url: str, archive: Path, auth_string: str | None) -> bool:
    """Whether the server at `api_url` holds this archive's token (a 401 or another token: no)."""
    token_file = Path(archive) / PREFECT_DIR / OWNER_TOKEN
    if not token_file.is_file():
        return False  # this archive never started a server
    try:
        answer = httpx.get(f"{api_url}/variables/name/{OWNER_VARIABLE}", auth=_auth(auth_string), timeout=10)
        value = answer.json().get("value") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):  # no answer, or not Prefect's JSON
        return False
    return value is not None and secrets.compare_digest(str(value).encode(), owner_token(archive).encode())


def claim(api_url: str, archive: Path, auth_string: str | None) -> None:
    """Store the archive's token in the server just started for it, so a later serve can reuse it."""
    token, auth = owner_token(archive), _auth(auth_string)
    url = f"{api_url}/variables/name/{OWNER_VARIABLE}"
    current = httpx.get(url, auth=auth, timeout=10)
    if current.status_code == 404:
        httpx.post(f"{api_url}/variables/", json={"name": OWNER_VARIABLE, "value": token}, auth=auth,
                   timeout=10).raise_for_status()
    elif current.raise_for_status().json().get("value") != token:  # a database copied from elsewhere
        httpx.patch(url, json={"value": token}, auth=auth, timeout=10).raise_for_status()


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_or_reuse(host: str = "127.0.0.1", port: int = 4200, *, archive: Path, timeout: float = 180,
                   auth_string: str | None = None) -> Server:
    """This archive's server already on host:port is reused; otherwise one is started and awaited.

    A port held by anything else raises `PortTaken`. With `auth_string` (`user:password`) the started
    server refuses every API request without it (Prefect's basic auth; only /health answers anyone).
    """
    api_url = f"http://{host}:{port}/api"
    home = prefect_home(archive)
    started = time.monotonic()
    if healthy(api_url):
        if owned(api_url, archive, auth_string):
            return Server(api_url, f"http://{host}:{port}", home, None, 0.0)
        raise port_taken(host, port, "--port", "a Prefect server this archive did not start")
    check_free(host, port, "--port")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, **PRIVATE_SERVER_ENV, "PREFECT_HOME": str(home),
           # The UI learns the API's address from these (PREFECT_API_URL is removed below): without them
           # it would call the default port 4200 whatever --port says.
           "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to itself as a client
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    # Browsers may call the API only from the UI's own page: a page elsewhere that guessed or borrowed
    # the credentials still fails the preflight a JSON request with an Authorization header needs.
    env["PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS"] = f"http://{host}:{port}"
    log = open(home / "server.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)  # Ctrl-C reaches us first; we stop the server in order
    log.close()
    while time.monotonic() - started < timeout:
        if healthy(api_url):
            server = Server(api_url, f"http://{host}:{port}", home, process, time.monotonic() - started)
            try:
                claim(api_url, archive, auth_string)
            except BaseException:
                server.stop()
                raise
            return server
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited (status {process.returncode}); "
                               f"see {home / 'server.log'}. Is port {port} taken? Try --port.")
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"the Prefect server did not answer on {api_url} within {timeout:.0f} s; "
                       f"see {home / 'server.log'}")
