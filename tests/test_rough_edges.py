"""Rough edges a new user hit (issue 20, finding 11): links follow the workspace's real port, the
archive page shows no editor controls (real Chromium against a real `testimony review`), a search for a
speaker nobody is says so, and a revision that does not exist is a request that cannot be met (2)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from pipeline.archive import catalog
from pipeline.archive.bundle import find_bundle
from pipeline.archive.viewer import INDEX, REVIEW_PORT_ENV
from pipeline.cli.main import main
from pipeline.run import process
from pipeline.transcript import Segment, Source, Transcript

from .test_flow import _free_port
from .test_workspace import PASSWORD, USER, _page

SHA = hashlib.sha256(b"rough edges").hexdigest()


def _transcript() -> Transcript:
    segments = [Segment(0, 0.5, 2.4, "Менің әкем лагерьде болды", "My father was in the camp", -0.3, 0.1, 1.2,
                        speaker="S1", english_source="machine"),
                Segment(1, 3.0, 5.0, "Екі жыл болды", "Two years passed", -0.4, 0.1, 1.1, speaker="S2",
                        english_source="machine")]
    return Transcript(Source("witness 9.mp4", SHA, 1000, 9.0, {"index": 1}), "kk", "kk", 0.9,
                      {"asr": {"name": "base"}, "options_key": "k"}, segments, created="2026-12-01T00:00:00+00:00",
                      speaker_names={"S1": "Witness"})


@pytest.fixture
def archive(tmp_path) -> Path:
    process.publish_transcript(tmp_path, _transcript())
    catalog.index_bundle(tmp_path, find_bundle(tmp_path, SHA))
    return tmp_path


def test_a_search_for_a_speaker_nobody_is_says_so(archive, capsys):
    assert main(["search", "лагерь*", "--speaker", "Nobody", "--out", str(archive)]) == 2
    err = capsys.readouterr().err
    assert "no speaker is named 'Nobody'" in err and "suffix" not in err
    assert main(["search", "лагерь*", "--speaker", "witness", "--out", str(archive)]) == 0
    assert main(["search", "лагерь", "--speaker", "S2", "--out", str(archive)]) == 1, "a speaker who did not say it"
    assert "suffixes" in capsys.readouterr().err


def test_history_of_a_revision_that_does_not_exist_is_refused_with_2(archive, capsys):
    assert main(["history", SHA[:12], "--revision", "5", "--out", str(archive)]) == 2
    captured = capsys.readouterr()
    assert "has revisions 0 to 0, not 5" in captured.err and captured.out == ""
    assert main(["history", SHA[:12], "--revision", "0", "--out", str(archive)]) == 0


def test_artifact_links_follow_the_review_port(archive, monkeypatch):
    from flows import artifacts

    transcript = Transcript.load(find_bundle(archive, SHA) / "transcript.json")
    monkeypatch.setenv(REVIEW_PORT_ENV, "4411")  # what serve --review-port 4411 sets for its flows
    text = artifacts.transcript_markdown(transcript, find_bundle(archive, SHA))
    assert f"http://127.0.0.1:4411/edit/{SHA[:12]}" in text and "4300" not in text
    assert f"http://127.0.0.1:4411/api/bundles/{SHA[:12]}/document?format=docx" in text
    monkeypatch.setenv(REVIEW_PORT_ENV, "0")  # serve --review-port 0: no workspace, no link to one
    summary = artifacts.summary_markdown(transcript)
    assert "http://" not in summary and "--review-port 0" in summary and "testimony get" in summary


def _review_link(bundle: Path) -> str | None:
    page = (bundle / INDEX).read_text(encoding="utf-8")
    return json.loads(re.search(r'id="transcript-data">(.*?)</script>', page, flags=re.S).group(1))["review"]


@pytest.mark.slow
def test_the_workspace_on_another_port_links_there_and_its_archive_page_hides_the_editor(archive, browser):
    port = _free_port()
    env = {**os.environ, "TESTIMONY_AUTH": f"{USER}:{PASSWORD}"}
    env.pop(REVIEW_PORT_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "review", "--out", str(archive),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(server):
            assert proc.poll() is None and time.monotonic() < deadline, "review did not start"
            time.sleep(0.2)
        page = _page(browser, server, "/")
        page.wait_for_selector("#bundles tbody tr")
        expect(page.locator("#archive")).to_be_visible()
        for control in ("#editor", "#save", "#flow", "#segments"):
            expect(page.locator(control)).to_be_hidden()
        page.goto(f"{server}/edit/{SHA[:12]}")
        page.wait_for_selector("#segments .seg")
        expect(page.locator("#archive")).to_be_hidden()
        page.locator("#segments .seg").nth(0).locator(".checked").check()
        page.click("#save")
        expect(page.locator("#status")).to_contain_text("saved revision 1")
        page.context.close()
        assert _review_link(find_bundle(archive, SHA)) == f"{server}/edit/{SHA[:12]}", "the viewer a save re-made"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False
