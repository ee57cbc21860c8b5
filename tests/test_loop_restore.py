"""A loop the ASR cut off a segment (`asr.loops`), in real Chromium against a real `testimony review`.

The reviewer sees one quiet line naming the cut, presses Restore, saves: the new revision's text is
the kept text plus the cut, with the cut's words, and carries no `cut` any more; `verify` passes. A
reader of an approved bundle whose segment still has a cut never gets the cut text.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from playwright.sync_api import Browser, Page, expect

from pipeline.archive import catalog
from pipeline.archive.bundle import TRANSCRIPT, find_bundle
from pipeline.asr.loops import cut_loop
from pipeline.review import accounts, revisions, workflow
from pipeline.run import process
from pipeline.transcript import Segment, Transcript, Word

from .conftest import review_server, sign_in
from .test_catalog import transcript
from .test_team import _fetch

pytestmark = pytest.mark.slow
HEARD = ["Үйге", "келдім"]
PEOPLE = {"aigerim": ("reviewer", ("kk",)), "bolat": ("reviewer", ("kk",)), "reader": ("reader", ())}


def _password(name: str) -> str:
    return f"{name}'s own password"


def _looping(name: str, checked: bool = False) -> Transcript:
    """Two segments; the first ends in `үй` fifty times, cut by the ASR's own `cut_loop`."""
    t = transcript(name, "kk", ["x", "екінші сөйлем"], ["x", "second sentence"])
    spoken = HEARD + ["үй"] * 50
    words = [Word(round(0.04 * i, 3), round(0.04 * i + 0.04, 3), " " + w, 0.9) for i, w in enumerate(spoken)]
    t.segments[0] = cut_loop(Segment(0, 0.0, 5.0, " ".join(spoken), "I came home", compression_ratio=9.0,
                                     words=words, flags=["possible_hallucination"]))
    for seg in t.segments:
        seg.checked = checked
    return t


def _approve(archive, sha256: str) -> None:
    """Claimed and checked by one reviewer, approved by another: what a reader may read."""
    checker, approver = accounts.get(archive, "aigerim"), accounts.get(archive, "bolat")
    workflow.claim(archive, sha256, checker)
    workflow.check(archive, sha256, checker)
    workflow.approve(archive, sha256, approver)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    archive = tmp_path_factory.mktemp("loops") / "archive"
    draft, approved = _looping("looping witness.mp4"), _looping("approved witness.mp4", checked=True)
    for t in (draft, approved):
        process.publish_transcript(archive, t)
    catalog.sync(archive)
    for name, (role, languages) in PEOPLE.items():
        accounts.add(archive, name, role, languages, _password(name), must_change=False)
    _approve(archive, approved.source.sha256)
    with review_server(archive) as url:
        yield {"archive": archive, "url": url, "draft": draft, "approved": approved}


def _as(browser: Browser, site: dict, name: str) -> tuple[Page, list[str]]:
    """A signed-in page, with every console error and failed response it meets."""
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(
        "Failed to load resource") else None)  # Chromium's own /favicon.ico: no page asked for it
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, site["url"], name, _password(name))
    return page, errors


def test_a_reviewer_sees_the_cut_restores_it_and_saves_it_as_a_revision(browser, site):
    draft, archive = site["draft"], site["archive"]
    cut = draft.segments[0].cut
    assert draft.segments[0].text == "Үйге келдім үй" and cut["repeats"] == 50  # the product's own cut
    page, errors = _as(browser, site, "aigerim")
    page.goto(f"{site['url']}/edit/{draft.id}")
    first = page.locator("#segments .seg").first
    line = first.locator(".cut")
    expect(line).to_be_visible()
    expect(line.locator(".cut-text")).to_have_text("Cut as a machine loop: «үй үй үй үй үй үй үй үй …» ×50 —")
    assert page.locator("#segments .seg").nth(1).locator(".cut").is_hidden(), "no cut, no line"

    line.locator("button.restore-cut").click()
    original = draft.segments[0].text + cut["text"]
    expect(first.locator(".original")).to_have_value(original)
    expect(first.locator(".cut")).to_be_hidden()
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")

    bundle = find_bundle(archive, draft.source.sha256)
    saved = revisions.newest(bundle)
    assert saved.number == 1 and saved.author == "aigerim"
    seg = saved.segments[0]
    assert seg["text"] == original and "cut" not in seg
    assert [w["word"].strip() for w in seg["words"]] == HEARD + ["үй"] * 50, "the cut words come back too"
    assert "possible_hallucination" in seg["flags"]
    assert saved.changes == [{"segment": 0, "change": "edited", "fields": {"text": [draft.segments[0].text, original]}}]
    written = json.loads((bundle / TRANSCRIPT).read_text())["segments"][0]
    assert written["text"] == original and "cut" not in written
    assert revisions.chain(bundle)[0].segments[0]["cut"]["repeats"] == 50, "the draft keeps the cut it had"
    api = json.loads(_fetch(page, "GET", f"/api/bundles/{draft.id}")["text"])
    assert api["number"] == 1 and api["segments"][0]["text"] == original and "cut" not in api["segments"][0]
    expect(first.locator(".cut")).to_be_hidden()  # reloaded after the save: nothing left to restore
    page.context.close()
    assert errors == []

    verify = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "verify", "--out", str(archive)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_reader_never_gets_the_cut_text(browser, site):
    approved = site["approved"]
    page, errors = _as(browser, site, "reader")
    draft = _fetch(page, "GET", f"/api/bundles/{site['draft'].id}")
    assert draft["status"] == 403 and "үй" not in draft["text"], "a draft: nothing at all"
    answer = _fetch(page, "GET", f"/api/bundles/{approved.id}")
    assert answer["status"] == 200
    segments = json.loads(answer["text"])["segments"]
    assert segments[0]["text"] == "Үйге келдім үй" and "cut" not in segments[0]
    assert "үй үй" not in answer["text"], "the cut text is not in the answer anywhere"
    page.goto(f"{site['url']}/edit/{approved.id}")
    page.wait_for_selector("#segments .seg")
    expect(page.locator("#segments .seg .cut").first).to_be_hidden()
    page.context.close()
    assert errors == []
