"""A throwaway PostgreSQL on loopback for tests: the database Prefect's server uses when it scales out.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user, in a folder
under /tmp it can reach (pytest's own temp folders are root-only).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def binaries() -> Path | None:
    """The folder holding initdb and postgres: on PATH, else Debian's versioned folder (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # e.g. a link in /usr/local/bin to the versioned folder
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(folders[-1]).parent if folders else None


@dataclass
class Postgres:
    url: str  # SQLAlchemy async URL for PREFECT_API_DATABASE_CONNECTION_URL
    root: Path
    process: subprocess.Popen
    log: Path


def _as_owner() -> dict:
    """Popen arguments that drop root to `postgres`; nothing as any other user."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def start(bin_dir: Path, port: int, *, timeout: float = 60) -> Postgres:
    """initdb, start on 127.0.0.1:port (trust auth, fsync off: a test database), create `prefect`."""
    root = Path(tempfile.mkdtemp(prefix="testimony-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    owner = _as_owner()
    subprocess.run([str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
                    "-E", "UTF8", "--no-locale", "--no-sync"], cwd=root, check=True, capture_output=True,
                   **owner)
    log = root / "postgres.log"
    with open(log, "w") as out:
        if owner:
            shutil.chown(log, "postgres", "postgres")
        process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(root / "data"), "-k", str(root), "-h", "127.0.0.1",
             "-p", str(port), "-c", "fsync=off", "-c", "max_connections=200"],
            cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **owner)
    pg = Postgres(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect", root, process, log)
    deadline = time.monotonic() + timeout
    while subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
                          "-U", "postgres"]).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(pg)
            raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    "prefect"], check=True, capture_output=True)
    return pg


def stop(pg: Postgres) -> None:
    """Fast shutdown (SIGINT: disconnect clients, then stop), killed if it hangs; the folder goes."""
    if pg.process.poll() is None:
        pg.process.send_signal(2)
        try:
            pg.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pg.process.pid, 9)
            pg.process.wait(timeout=10)
    shutil.rmtree(pg.root, ignore_errors=True)
