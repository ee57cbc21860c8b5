"""Witness data stays in the archive: a testimony goes through every path a team uses (`testimony run`,
serve's inbox, the Prefect UI's form in Chromium, one review save in the workspace), then every file on this
machine written since the test began, outside the archive root and the inbox, is searched for the
words it says and the name it was filed under: SQLite databases through SQLite, compressed files
decompressed. There must be no hit.

The speech is espeak-ng English that real Whisper base hears exactly ("purple giraffe"); the file
name carries a token no other file has.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from . import media_factory as mf
from .conftest import CHROMIUM
from .test_flow import _free_port
from .test_serve import _arrivals
from .test_ui import form_field, open_run_form

pytestmark = pytest.mark.slow
SAID = "purple giraffe"  # in the speech
FILED = "zebraquill"  # in the file names
USER, PASSWORD = "leak-tester", "leak-secret-7"
SKIP_ROOTS = ("/proc", "/sys", "/dev", "/run")
MAX_SCAN_BYTES = 512 * 1024 * 1024  # larger new files (none are expected) are read in part only


def _needles() -> tuple[bytes, ...]:
    return tuple(s.encode() for s in (SAID, FILED, SAID.title(), FILED.title(), SAID.upper(), FILED.upper()))


def _sqlite_text(path: Path) -> bytes:
    """Every value of every table, read through SQLite itself (text in overflow pages is split on disk)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return b""
    chunks = []
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in con.execute(f'SELECT * FROM "{table}"'):
                chunks.append(repr(row).encode("utf-8", "replace"))
                chunks += [v if isinstance(v, bytes) else b"" for v in row]
    except sqlite3.Error:
        pass
    finally:
        con.close()
    return b"\n".join(chunks)


def _decompressed(path: Path, data: bytes) -> bytes:
    """The bytes inside a gzip, bz2, xz or zip file; b"" for anything else."""
    for magic, opener in ((b"\x1f\x8b", gzip.decompress), (b"BZh", bz2.decompress), (b"\xfd7zXZ", lzma.decompress)):
        if data.startswith(magic):
            try:
                return opener(data)
            except (OSError, EOFError, lzma.LZMAError, ValueError):
                return b""
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                return b"\n".join(zf.read(name) for name in zf.namelist())
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError):
            return b""
    return b""


def _hits(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SCAN_BYTES)
    except OSError:
        return []
    views = [data, _decompressed(path, data)]
    if data.startswith(b"SQLite format 3\x00"):
        views.append(_sqlite_text(path))
    return [needle.decode() for needle in _needles() if any(needle in view for view in views)]


def _new_files(since: float, keep_out: list[Path]) -> list[Path]:
    """Regular files on this machine modified after `since`, outside `keep_out` and the kernel's trees."""
    found = []
    skip = {str(p.resolve()) for p in keep_out} | set(SKIP_ROOTS)
    for folder, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
        for name in files:
            path = os.path.join(folder, name)
            try:
                if os.path.isfile(path) and not os.path.islink(path) and os.stat(path).st_mtime >= since:
                    found.append(Path(path))
            except OSError:
                continue
    return found


class Serve:
    """`testimony serve` in its own process; its console is read into memory, not written to a file."""

    def __init__(self, inbox: Path, archive: Path, env: dict[str, str]):
        self.port, self.review_port = _free_port(), _free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.main", "serve", "--inbox", str(inbox), "--out", str(archive),
             "--port", str(self.port), "--review-port", str(self.review_port), "--settle", "1.5"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.workspace = f"http://127.0.0.1:{self.review_port}"
        deadline = time.monotonic() + 180
        while not any("ready in" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("serve did not start:\n" + "".join(self.lines[-50:]))
            time.sleep(0.5)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=60) == 0


def _run_form(serve: Serve, video: Path) -> None:
    """The Prefect UI's Custom run form in real Chromium (its own browser, closed afterwards as a person
    closes theirs); waits for the run to finish."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context()
        context.add_init_script(f"localStorage.setItem('prefect-password', btoa({f'{USER}:{PASSWORD}'!r}))")
        page = context.new_page()
        open_run_form(page, serve.api.removesuffix("/api"))
        form_field(page, "video").locator("textarea").fill(str(video))
        run_name = page.locator("input[type=text]").first.input_value()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url("**/deployments/deployment/*")
        browser.close()
    deadline = time.monotonic() + 300
    while not (runs := [r for r in httpx.post(f"{serve.api}/flow_runs/filter", json={"limit": 50}, timeout=10,
                                               auth=(USER, PASSWORD)).json() if r["name"] == run_name]) \
            or runs[0]["state_type"] not in ("COMPLETED", "FAILED", "CRASHED"):
        assert time.monotonic() < deadline, "the form's run did not finish"
        time.sleep(1)
    assert runs[0]["state_type"] == "COMPLETED", "".join(serve.lines[-40:])


def _review_once(serve: Serve) -> None:
    """One save through the workspace's API, as the editor page makes it."""
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    page = httpx.get(serve.workspace + "/", headers=auth, timeout=10).text
    token = page.split('name="testimony-token" content="')[1][:32]
    bundle_id = httpx.get(f"{serve.workspace}/api/bundles", headers=auth, timeout=10).json()["bundles"][0]["id"]
    opened = httpx.get(f"{serve.workspace}/api/bundles/{bundle_id}", headers=auth, timeout=10).json()
    segments = [{**s, "checked": True, "text": s["text"] + " (checked)"} for s in opened["segments"]]
    saved = httpx.post(f"{serve.workspace}/api/bundles/{bundle_id}/revisions", timeout=30,
                       headers={**auth, "X-Testimony-Token": token, "Content-Type": "application/json"},
                       content=json.dumps({"base": opened["revision"], "author": "Aigul", "segments": segments}))
    assert saved.status_code == 201, saved.text


def _heard(archive: Path) -> list[str]:
    return [json.loads(p.read_text())["segments"][0]["text"] for p in sorted(archive.glob("*/transcript.json"))]


def test_witness_words_and_names_stay_inside_the_archive(tmp_path_factory, converted_base):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (bin/setup installs Debian's `chromium`)")
    root = tmp_path_factory.mktemp("leaks")
    speech = mf.speak(f"My cousin was taken away in the night. The password is {SAID}.", "en", root / "speech.wav")
    uploads = root / "uploads"
    uploads.mkdir()
    videos = {how: mf.video_from_audio(speech, uploads / f"{FILED} {how}.mp4", lead_silence=lead)
              for how, lead in (("run", 0.5), ("inbox", 0.8), ("form", 1.1))}
    store, inbox, archive = root / "models", root / "inbox", root / "archive"
    (store / "whisper").mkdir(parents=True)
    shutil.copy(converted_base, store / "whisper" / "base.pt")
    inbox.mkdir()
    env = {**os.environ, "TESTIMONY_MODELS": str(store), "TESTIMONY_AUTH": f"{USER}:{PASSWORD}"}
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "TESTIMONY_DATA", "TESTIMONY_UI_TEXT"):
        env.pop(key, None)
    began = time.time() - 1

    subprocess.run([sys.executable, "-m", "pipeline.cli.main", "run", str(videos["run"]), "--out", str(archive)],
                   env=env, check=True, capture_output=True)
    serve = Serve(inbox, archive, env)
    try:
        shutil.copy(videos["inbox"], inbox / videos["inbox"].name)
        deadline = time.monotonic() + 300
        while not any(a["path"].endswith(videos["inbox"].name) for a in _arrivals(archive)):
            assert time.monotonic() < deadline, "".join(serve.lines[-40:])
            time.sleep(1)
        _run_form(serve, videos["form"])
        _review_once(serve)
    finally:
        serve.stop()
    heard = _heard(archive)
    assert len(heard) == 3 and all(SAID in text.lower() for text in heard), heard  # the words really were said

    new = _new_files(began, [archive, inbox, uploads])
    hits = {str(path): found for path in new if (found := _hits(path))}
    hits |= {str(path): ["in its name"] for path in new if FILED in str(path).lower()}
    assert hits == {}, f"witness data outside the archive: {hits}"
    console = "".join(serve.lines)
    assert SAID not in console.lower(), "serve's console shows what the witness said"
