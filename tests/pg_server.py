"""A throwaway PostgreSQL on loopback for tests: the database Prefect's server uses when it scales out.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user, in a folder
under /tmp it can reach (pytest's own temp folders are root-only).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NEEDED = ("initdb", "postgres", "pg_isready", "createdb")


def binaries() -> Path | None:
    """The folder holding the server's programs: where `initdb` on PATH leads, else Debian's
    versioned folder (newest); None when PostgreSQL is not installed."""
    candidates = [Path(found).resolve().parent] if (found := shutil.which("initdb")) else []
    candidates += sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
                         key=lambda p: int(p.parts[-2]) if p.parts[-2].isdigit() else 0, reverse=True)
    return next((d for d in candidates if all((d / name).is_file() for name in NEEDED)), None)


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
    """initdb, start on 127.0.0.1:port (trust auth, fsync off: a test database), create `prefect`.

    Whatever fails on the way, no server and no folder is left behind.
    """
    root = Path(tempfile.mkdtemp(prefix="testimony-pg-"))
    owner = _as_owner()
    pg = None
    try:
        if owner:
            shutil.chown(root, "postgres", "postgres")
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
                raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "prefect"], check=True, capture_output=True)
        return pg
    except BaseException:
        if pg is not None:
            stop(pg)
        shutil.rmtree(root, ignore_errors=True)
        raise


def stop(pg: Postgres) -> None:
    """Fast shutdown (SIGINT: disconnect clients, then stop), killed if it hangs; the folder goes."""
    if pg.process.poll() is None:
        pg.process.send_signal(signal.SIGINT)
        try:
            pg.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pg.process.pid, signal.SIGKILL)
            pg.process.wait(timeout=10)
    shutil.rmtree(pg.root, ignore_errors=True)
