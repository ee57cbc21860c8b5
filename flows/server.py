"""Start, or reuse, a local Prefect server: loopback only, telemetry off, state under our data folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline import config

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


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_or_reuse(host: str = "127.0.0.1", port: int = 4200, *, timeout: float = 180,
                   archive: Path | None = None, auth_string: str | None = None) -> Server:
    """A healthy server already on host:port is reused; otherwise one is started and awaited.

    With `auth_string` (`user:password`) the started server refuses every API request without it
    (Prefect's basic auth; only /health answers anyone).
    """
    api_url = f"http://{host}:{port}/api"
    home = prefect_home(archive)
    started = time.monotonic()
    if healthy(api_url):
        return Server(api_url, f"http://{host}:{port}", home, None, 0.0)
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
            return Server(api_url, f"http://{host}:{port}", home, process, time.monotonic() - started)
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited (status {process.returncode}); "
                               f"see {home / 'server.log'}. Is port {port} taken? Try --port.")
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"the Prefect server did not answer on {api_url} within {timeout:.0f} s; "
                       f"see {home / 'server.log'}")
