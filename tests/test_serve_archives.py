"""Two archives on one machine, each with its own `testimony serve`: neither adopts the other's Prefect server
or review port, and nothing of one (a canary word in a file name) reaches any file of the other. The
inbox on the way: processed files leave for `done/`, a name that is not UTF-8 is processed, and no
symlink (a video, a sidecar, `failed/` itself) is ever followed. A tiny random Whisper stands in for
`base`: the files are silence, what matters is where their names and bytes go."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.store import registry as model_registry

from . import media_factory as mf
from .test_flow import _free_port

pytestmark = pytest.mark.slow
NOT_UTF8 = b"\xff\xfe-witness.mp4"


def _serve_cmd(root: Path, name: str, port: int, review_port: int) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.main", "serve", "--inbox", str(root / name / "inbox"), "--out",
            str(root / name / "archive"), "--port", str(port), "--review-port", str(review_port), "--settle", "0.5"]


def _env(root: Path, name: str, store: Path) -> dict[str, str]:
    env = {**os.environ, "TESTIMONY_MODELS": str(store), "TESTIMONY_DATA": str(root / name / "data"),
           "TESTIMONY_AUTH": f"{name}:{name}-secret"}
    for key in ("PREFECT_API_URL", "PREFECT_HOME"):  # each archive's Prefect home is its own .prefect/
        env.pop(key, None)
    return env


def _start(root: Path, name: str, store: Path, port: int, review_port: int) -> tuple[subprocess.Popen, Path]:
    (root / name / "inbox").mkdir(parents=True, exist_ok=True)
    log_path = root / f"{name}.console"
    log = open(log_path, "w")
    proc = subprocess.Popen(_serve_cmd(root, name, port, review_port), env=_env(root, name, store), stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    began = time.monotonic()
    while "ready in" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() - began > 240:
            proc.kill()
            pytest.fail(f"serve {name} did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    return proc, log_path


def _refused(root: Path, name: str, store: Path, port: int, review_port: int) -> str:
    done = subprocess.run(_serve_cmd(root, name, port, review_port), env=_env(root, name, store),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("<frozen runpy>")]
    assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr
    return lines[0]


def _outcomes(archive: Path) -> dict[str, str]:
    if not (archive / "catalog.sqlite").exists():
        return {}
    con = sqlite3.connect(archive / "catalog.sqlite")
    try:
        return {name: outcome for name, outcome in con.execute("SELECT file_name, outcome FROM arrivals")}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def _wait_for(archive: Path, names: set[str], console: Path, timeout: float = 300) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while not names <= (seen := _outcomes(archive)).keys():
        assert time.monotonic() < deadline, f"{names - seen.keys()} not seen\n{console.read_text()[-3000:]}"
        time.sleep(1)
    return seen


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 0


def _files_under(folder: Path):
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            path = Path(dirpath) / f
            if not path.is_symlink():
                yield path


def test_two_archives_two_serves_share_nothing(tmp_path, tiny_whisper):
    store = tmp_path / "models"
    (store / "whisper").mkdir(parents=True)
    model_registry.write_record(Path(shutil.copy(tiny_whisper, store / "whisper" / "base.pt")), name="base",
                                origin="tiny random test model")
    port_a, review_a, port_b, review_b = (_free_port() for _ in range(4))
    a, console_a = _start(tmp_path, "a", store, port_a, review_a)
    b = None
    try:
        line = _refused(tmp_path, "b", store, port_a, review_b)  # A's server answers there: not B's
        assert line == (f"error: port {port_a} on 127.0.0.1 is taken by a Prefect server this archive did not "
                        "start; pass --port with a free port"), line
        line = _refused(tmp_path, "b", store, port_b, review_a)
        assert f"port {review_a}" in line and "--review-port" in line, line
        assert not (tmp_path / "b" / "archive" / ".prefect" / "owner-token").exists(), "nothing was started"
        b, console_b = _start(tmp_path, "b", store, port_b, review_b)
        token = tmp_path / "b" / "archive" / ".prefect" / "owner-token"
        assert token.stat().st_mode & 0o777 == 0o600

        canary = f"zebrafish{secrets.token_hex(4)}"
        inbox_b, outside = tmp_path / "b" / "inbox", tmp_path / "outside"
        outside.mkdir()
        (inbox_b / "en").mkdir()
        mf.silence_video(inbox_b / "en" / f"{canary}.mp4", 1.2)
        mf.silence_video(outside / "target.mp4", 1.4)
        (inbox_b / "link.mp4").symlink_to(outside / "target.mp4")
        mf.silence_video(inbox_b / "en" / "told.mp4", 1.6)
        (outside / "secret.json").write_text('{"language": "en"}', encoding="utf-8")
        (inbox_b / "en" / "told.mp4.json").symlink_to(outside / "secret.json")
        mf.silence_video(Path(os.fsdecode(bytes(inbox_b / "en") + b"/" + NOT_UTF8)), 1.8)

        seen = _wait_for(tmp_path / "b" / "archive", {f"{canary}.mp4", "link.mp4", "told.mp4",
                                                      "\\xff\\xfe-witness.mp4"}, console_b)
        assert seen[f"{canary}.mp4"] == "processed" and seen["\\xff\\xfe-witness.mp4"] == "processed", seen
        assert seen["link.mp4"].startswith("refused: it is a symbolic link; it was not followed"), seen
        assert seen["told.mp4"].startswith("refused: its sidecar told.mp4.json is a symbolic link"), seen
        done = {os.fsencode(p.name) for p in (inbox_b / "done").iterdir()}
        assert {f"{canary}.mp4".encode(), NOT_UTF8} <= done, "processed files leave the inbox"
        assert not os.listdir(inbox_b / "en"), "nothing processed or refused stays in the inbox"
        assert (inbox_b / "failed" / "link.mp4").is_symlink() and (inbox_b / "failed" / "told.mp4.json").is_symlink()
        assert len(os.listdir(tmp_path / "b" / "archive" / "originals")) == 2, "the refused files were never read"

        inbox_a = tmp_path / "a" / "inbox"  # A's failed/ planted as a symlink: nothing moves through it
        (tmp_path / "elsewhere").mkdir()
        (inbox_a / "failed").symlink_to(tmp_path / "elsewhere")
        (inbox_a / "broken.mp4").write_text("not a video\n" * 20, encoding="utf-8")
        seen_a = _wait_for(tmp_path / "a" / "archive", {"broken.mp4"}, console_a)
        assert seen_a["broken.mp4"].startswith("failed: ") and (inbox_a / "broken.mp4").exists()
        assert not os.listdir(tmp_path / "elsewhere"), "failed/ as a symlink is never followed"
        console = console_a.read_text(encoding="utf-8")
        assert "Traceback" not in console and sum("broken.mp4" in ln for ln in console.splitlines()) == 1, console
        assert "not a video" in (tmp_path / "a" / "archive" / ".prefect" / "serve.log").read_text(encoding="utf-8")
    finally:
        for proc in (b, a):
            if proc is not None and proc.poll() is None:
                _stop(proc)
    hits = [p for p in _files_under(tmp_path / "a") if canary.encode() in p.read_bytes()]
    assert hits == [], f"archive B's file name reached archive A: {hits}"
    assert any(canary.encode() in p.read_bytes() for p in _files_under(tmp_path / "b" / "archive")), "sanity"
