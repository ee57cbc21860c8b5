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


def _looping(name: str, checked: bool = False, at: int = 0) -> Transcript:
    """Two segments; segment `at` ends in `үй` fifty times, cut by the ASR's own `cut_loop`."""
    texts = ["x", "екінші сөйлем"] if at == 0 else ["бірінші сөйлем", "x"]
    t = transcript(name, "kk", texts, ["x", "second sentence"] if at == 0 else ["first sentence", "x"])
    spoken, start = HEARD + ["үй"] * 50, t.segments[at].start
    words = [Word(round(start + 0.04 * i, 3), round(start + 0.04 * i + 0.04, 3), " " + w, 0.9)
             for i, w in enumerate(spoken)]
    t.segments[at] = cut_loop(Segment(at, start, start + 5.0, " ".join(spoken), "I came home", compression_ratio=9.0,
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
    edits = {name: _looping(f"{name} witness.mp4") for name in ("split", "merge", "conflict", "typo")}
    edits["merge in"] = _looping("merge in witness.mp4", at=1)
    for t in (draft, approved, *edits.values()):
        process.publish_transcript(archive, t)
    catalog.sync(archive)
    for name, (role, languages) in PEOPLE.items():
        accounts.add(archive, name, role, languages, _password(name), must_change=False)
    _approve(archive, approved.source.sha256)
    with review_server(archive) as url:
        yield {"archive": archive, "url": url, "draft": draft, "approved": approved, **edits}


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
    assert saved.changes == [{"segment": 0, "change": "edited", "fields": {"text": [draft.segments[0].text, original],
                                                                           "cut": [cut["text"], None]}}]
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


def _newest(site: dict, name: str) -> revisions.Revision:
    return revisions.newest(find_bundle(site["archive"], site[name].source.sha256))


def _open(browser: Browser, site: dict, name: str, who: str = "aigerim") -> tuple[Page, list[str]]:
    page, errors = _as(browser, site, who)
    page.goto(f"{site['url']}/edit/{site[name].id}")
    page.wait_for_selector("#segments .seg")
    return page, errors


def _segments(page: Page):
    return page.locator("#segments .seg")


def test_a_split_leaves_the_cut_on_the_later_part_only(browser, site):
    page, errors = _open(browser, site, "split")
    loop = site["split"].segments[0].cut["text"]
    _segments(page).first.locator(".original").evaluate("e => e.setSelectionRange(11, 11)")  # after "келдім"
    _segments(page).first.locator("button.split").click()
    expect(_segments(page)).to_have_count(3)
    left, right = _segments(page).nth(0), _segments(page).nth(1)
    expect(left.locator(".original")).to_have_value("Үйге келдім")
    expect(left.locator(".cut")).to_be_hidden()  # it ends where the speech went on: no Restore there
    expect(right.locator(".cut-text")).to_have_text("Cut as a machine loop: «үй үй үй үй үй үй үй үй …» ×50 —")
    right.locator("button.restore-cut").click()
    expect(right.locator(".original")).to_have_value("үй" + loop)
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")
    first, second = _newest(site, "split").segments[:2]
    assert (first["text"], second["text"]) == ("Үйге келдім", "үй" + loop)
    assert "cut" not in first and "cut" not in second
    expect(_segments(page).locator(".cut").first).to_be_hidden()
    page.context.close()
    assert errors == []


def test_a_merge_that_would_bury_a_cut_is_refused_by_the_editor_and_the_server(browser, site):
    page, errors = _open(browser, site, "merge")
    bundle = find_bundle(site["archive"], site["merge"].source.sha256)
    loaded = json.loads(_fetch(page, "GET", f"/api/bundles/{site['merge'].id}")["text"])
    first, second = loaded["segments"]
    merged = {**first, "end": second["end"], "text": f"{first['text']} {second['text']}"}
    answer = _fetch(page, "POST", f"/api/bundles/{site['merge'].id}/revisions",
                    {"base": loaded["revision"], "segments": [merged]})
    assert answer["status"] == 400, answer
    assert "segment 0: merged with id 1, but id 0 ends in a loop the machine cut" in answer["text"]
    assert not (bundle / revisions.DIR).exists(), "a refused save changes nothing"

    _segments(page).first.locator("button.merge").click()
    expect(page.locator("#status")).to_contain_text("not merged: #1 ends in a loop the machine cut («үй үй")
    expect(_segments(page)).to_have_count(2)
    _segments(page).first.locator("button.dismiss-cut").click()
    expect(_segments(page).first.locator(".cut")).to_be_hidden()
    _segments(page).first.locator("button.merge").click()
    expect(_segments(page)).to_have_count(1)
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")
    saved = _newest(site, "merge")
    assert [s["text"] for s in saved.segments] == ["Үйге келдім үй екінші сөйлем"] and "cut" not in saved.segments[0]
    edited = next(c for c in saved.changes if c["segment"] == 0)
    assert edited["fields"]["cut"] == [site["merge"].segments[0].cut["text"], None], "the dismissal is on the record"
    page.context.close()
    assert errors == []


def test_a_merge_keeps_the_cut_of_the_segment_merged_in(browser, site):
    page, errors = _open(browser, site, "merge in")
    loop = site["merge in"].segments[1].cut["text"]
    _segments(page).first.locator("button.merge").click()
    expect(_segments(page)).to_have_count(1)
    expect(_segments(page).first.locator(".cut")).to_be_visible()
    _segments(page).first.locator("button.restore-cut").click()
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")
    (seg,) = _newest(site, "merge in").segments
    assert seg["text"] == "бірінші сөйлем Үйге келдім үй" + loop and "cut" not in seg
    page.context.close()
    assert errors == []


def test_a_typo_fix_keeps_the_cut_and_restore_appends_it_once(browser, site):
    page, errors = _open(browser, site, "typo")
    loop = site["typo"].segments[0].cut["text"]
    _segments(page).first.locator(".original").fill("Үйге келдім, үй ")  # a fix that left a trailing space
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")
    assert _newest(site, "typo").segments[0]["cut"]["text"] == loop, "an edit of the text keeps the cut"
    expect(_segments(page).first.locator(".cut")).to_be_visible()  # reloaded: still offered
    _segments(page).first.locator("button.restore-cut").click()
    expect(_segments(page).first.locator(".original")).to_have_value("Үйге келдім, үй" + loop)
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 2")
    seg = _newest(site, "typo").segments[0]
    assert seg["text"] == "Үйге келдім, үй" + loop and "cut" not in seg and seg["words"] is None
    page.context.close()
    assert errors == []


def test_the_conflict_view_shows_each_sides_cut_and_keeps_my_restore(browser, site):
    mine, my_errors = _open(browser, site, "conflict")
    theirs, their_errors = _open(browser, site, "conflict", "bolat")
    loop = site["conflict"].segments[0].cut["text"]
    _segments(theirs).first.locator(".original").fill("Үйге келдім, үй")
    theirs.click("#save")
    expect(theirs.locator("#status")).to_contain_text("saved revision 1")

    _segments(mine).first.locator("button.restore-cut").click()
    mine.click("#save")
    box = mine.locator("#conflict-list .conflict")
    expect(box).to_have_count(1)
    named = "«үй үй үй үй үй үй үй үй …» ×50"
    expect(box.locator(".theirs .cut")).to_have_text(f"Cut as a machine loop: {named} (not restored)")
    expect(box.locator(".mine .cut")).to_have_text(f"Cut loop {named}: restored")
    box.locator(".mine button").click()
    expect(mine.locator("#status")).to_contain_text("every conflict chosen: save again")
    mine.click("#save")
    expect(mine.locator("#status")).to_contain_text("saved revision 2")
    seg = _newest(site, "conflict").segments[0]
    assert seg["text"] == "Үйге келдім үй" + loop and "cut" not in seg, "my Restore survives: no second offer"
    expect(_segments(mine).first.locator(".cut")).to_be_hidden()
    for page in (mine, theirs):
        page.context.close()
    assert my_errors == [] and their_errors == []
