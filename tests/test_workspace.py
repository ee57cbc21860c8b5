"""The review workspace in real Chromium against a real `testimony review` server and real bundles.

One bundle is made by real Whisper base from LibriVox speech; a Kazakh one is published through the
run's own path from a transcript written here (its English is what a reviewer edits), with hostile
text and a 5,000-character unbroken segment among its segments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from pipeline.archive import catalog, custody
from pipeline.archive.bundle import TRANSCRIPT, find_bundle
from pipeline.archive.integrity import verify_bundle
from pipeline.asr.core import AsrOptions
from pipeline.evaluation.devset import librivox
from pipeline.review import accounts, revisions
from pipeline.run import process
from pipeline.run.process import RunOptions
from pipeline.transcript import LOW_CONFIDENCE, Segment, Source, Transcript

from . import media_factory as mf
from .conftest import sign_in
from .test_flow import _free_port
from .test_viewer import wait_js

pytestmark = pytest.mark.slow
USER, PASSWORD = "reviewer", "correct horse battery"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>\u202eevil\u0007'
KK_SHA = hashlib.sha256(b"kazakh witness").hexdigest()


def _kazakh() -> Transcript:
    texts = [("Менің әкем лагерьде болды", "My father was in the camp", []),
             ("Екі жыл болды", "Two years passed", [LOW_CONFIDENCE]),
             (HOSTILE, "hostile", []),
             ("а" * 5000, None, [LOW_CONFIDENCE])]
    segments = [Segment(n, 1.0 + 3 * n, 3.0 + 3 * n, text, en, -0.5, 0.1, 1.1, flags, None, 0.0,
                        english_source="machine" if en else None) for n, (text, en, flags) in enumerate(texts)]
    return Transcript(Source("kazakh witness.mp4", KK_SHA, 100, 14.0, {"index": 1}), "kk", "kk", 0.9,
                      {"asr": {"name": "base"}, "options_key": "x"}, segments, created="2026-12-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, converted_base) -> Path:
    root = tmp_path_factory.mktemp("review")
    clips = [wav for _, wav, _ in sorted(librivox(), key=lambda clip: clip[1])][:3]
    video = mf.interview_video(clips, root / "interview.mp4", lead_silence=1.0, pause=1.5)
    archive = root / "archive"
    process.process_video(video, archive, RunOptions(asr=AsrOptions(model=str(converted_base))))
    process.publish_transcript(archive, _kazakh())
    catalog.sync(archive)
    return archive


@pytest.fixture(scope="module")
def server(archive, tmp_path_factory):
    """`testimony review` with a tiny kk->en Argos package installed, so edited originals get an offer."""
    from .tiny_models.argos import build_tiny_argos_package

    port = _free_port()
    models = tmp_path_factory.mktemp("review-models")
    env = {**os.environ, "TESTIMONY_AUTH": f"{USER}:{PASSWORD}", "TESTIMONY_MODELS": str(models)}
    package = build_tiny_argos_package(tmp_path_factory.mktemp("argos-build"), "kk", "en")
    subprocess.run([sys.executable, "-m", "pipeline.cli.main", "models", "import", str(package)], env=env,
                   check=True, capture_output=True)
    accounts.add(archive, USER, "admin", password=PASSWORD, must_change=False)  # what TESTIMONY_AUTH would make
    for name, password in REVIEWERS.items():
        accounts.add(archive, name, "reviewer", ("kk", "en"), password, must_change=False)
    log = tmp_path_factory.mktemp("review-log") / "review.log"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "review", "--out", str(archive),
                             "--port", str(port)], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    yield url
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert PASSWORD not in log.read_text(), "the password never reaches a log"


def _auth() -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


REVIEWERS = {"Aigul": "Aigul's password", "Erlan": "Erlan's password"}  # both check kk and en


def _page(browser: Browser, server: str, path: str, who: str = USER) -> Page:
    context = browser.new_context()
    page = context.new_page()
    page.on("request", lambda r: r.url.startswith(server) or r.url.startswith("blob:")
            or pytest.fail(f"request left the workspace: {r.url}"))
    sign_in(page, server, who, REVIEWERS.get(who, PASSWORD))
    page.goto(server + path)
    return page


def _english_id(archive: Path) -> str:
    return next(v.id for v in catalog.list_videos(archive) if v.sha256 != KK_SHA)


def test_without_credentials_nothing_is_revealed(server, archive):
    page = httpx.get(server + "/", timeout=10)
    assert page.status_code == 303 and page.headers["location"] == "/signin", "a page sends a browser to sign in"
    for path in ("/api/bundles", f"/api/bundles/{KK_SHA[:12]}", f"/media/{KK_SHA[:12]}"):
        response = httpx.get(server + path, timeout=10)
        assert response.status_code == 401 and "kazakh" not in response.text and "witness" not in response.text
    wrong = {"Authorization": "Basic " + base64.b64encode(b"reviewer:guess").decode()}
    assert httpx.get(server + "/api/bundles", headers=wrong, timeout=10).status_code == 401


def test_state_changes_need_json_the_token_and_our_origin(server, archive):
    bundle = find_bundle(archive, KK_SHA)
    before = (bundle / "manifest.json").read_bytes()
    url = f"{server}/api/bundles/{KK_SHA[:12]}/revisions"
    body = json.dumps({"base": "x", "author": "A", "segments": []})
    token = httpx.get(server + "/", headers=_auth(), timeout=10).text.split('name="testimony-token" content="')[1][:32]
    cases = [({"Content-Type": "text/plain"}, 415), ({"Content-Type": "application/json"}, 403),
             ({"Content-Type": "application/json", "X-Testimony-Token": token, "Origin": "http://evil.example"}, 403)]
    for headers, status in cases:
        assert httpx.post(url, content=body, headers={**_auth(), **headers}, timeout=10).status_code == status
    good = {**_auth(), "Content-Type": "application/json", "X-Testimony-Token": token}
    assert httpx.post(url, content=b"{not json", headers=good, timeout=10).status_code == 400
    assert httpx.post(url, content=body, headers=good, timeout=10).status_code == 400  # unknown base
    assert httpx.get(f"{server}/api/bundles/..%2f..%2fetc", headers=_auth(), timeout=10).status_code == 404
    assert httpx.get(f"{server}/api/bundles/{'0' * 12}", headers=_auth(), timeout=10).status_code == 404
    assert (bundle / "manifest.json").read_bytes() == before


def test_archive_page_lists_review_state(browser, server, archive):
    page = _page(browser, server, "/")
    page.wait_for_selector("#bundles tbody tr")
    rows = page.locator("#bundles tbody tr")
    assert rows.count() == 2
    page.fill("#filter", "kazakh")  # filtered by the server, which answers a moment later
    expect(rows).to_have_count(1)
    assert "machine draft" in rows.first.inner_text()
    page.context.close()


def test_archive_page_pages_and_sorts_on_the_server(browser, server, archive):
    page = _page(browser, server, "/?per_page=1")
    name = page.locator("#bundles tbody tr a[href^='/edit/']")
    expect(page.locator("#page-info")).to_have_text("1–1 of 2")
    expect(name).to_have_text("interview.mp4")
    assert page.locator("#previous").is_disabled()
    page.click("#next")
    expect(page.locator("#page-info")).to_have_text("2–2 of 2")
    expect(name).to_have_text("kazakh witness.mp4")
    assert page.locator("#next").is_disabled()
    page.click("#bundles th[data-key='file_name']")  # the same column again: descending, from the start
    expect(page.locator("#page-info")).to_have_text("1–1 of 2")
    expect(name).to_have_text("kazakh witness.mp4")
    page.click("#next")
    expect(name).to_have_text("interview.mp4")
    page.context.close()


def test_edit_split_merge_check_and_save_from_the_browser(browser, server, archive):
    sha = next(v.sha256 for v in catalog.list_videos(archive) if v.sha256 != KK_SHA)
    page = _page(browser, server, f"/edit/{sha[:12]}", "Aigul")
    page.wait_for_selector("#segments .seg")
    count = page.locator("#segments .seg").count()
    assert count >= 3, "three LibriVox answers"
    first = page.locator("#segments .seg").nth(0)
    original = first.locator(".original")
    original.fill(original.input_value() + " indeed")
    first.locator(".end-plus").click()
    first = page.locator("#segments .seg").nth(0)
    first.locator(".original").evaluate("t => t.setSelectionRange(5, 5)")
    first.locator(".split").click()
    assert page.locator("#segments .seg").count() == count + 1
    page.locator("#segments .seg").nth(2).locator(".merge").click()
    assert page.locator("#segments .seg").count() == count
    page.locator("#segments .seg").nth(0).locator(".checked").check()
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")
    page.reload()
    page.wait_for_selector("#segments .seg")
    assert page.locator("#segments .seg").nth(1).locator(".original").input_value().endswith("indeed")
    assert page.locator("#segments .seg").nth(0).locator(".checked").is_checked()
    page.context.close()

    bundle = find_bundle(archive, sha)
    transcript = Transcript.load(bundle / TRANSCRIPT)
    assert any(s.text.endswith("indeed") for s in transcript.segments)
    assert "indeed" in (bundle / "en.srt").read_text(encoding="utf-8")
    assert {h.sha256 for h in catalog.search(archive, "indeed")} == {sha}
    assert verify_bundle(archive, bundle).ok
    history = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "history", sha[:12], "--out",
                              str(archive)], capture_output=True, text=True, check=True).stdout
    assert "Aigul" in history, "the signed-in account is the author"
    (bundle / "en.srt").write_text("hand-edited\n", encoding="utf-8")
    problems = verify_bundle(archive, bundle).problems
    assert any("en.srt: changed" in p for p in problems)


def test_keys_play_replay_and_pause_the_video(browser, server, archive):
    page = _page(browser, server, f"/edit/{_english_id(archive)}")
    page.wait_for_selector("#segments .seg")
    third = page.locator("#segments .seg").nth(2)
    start = float(third.locator(".start").input_value())
    third.locator(".original").focus()
    page.keyboard.press("Alt+R")  # replay the segment: from its start
    wait_js(page, "!document.getElementById('player').paused", 10_000)
    assert page.evaluate("document.getElementById('player').currentTime") >= start - 0.05
    page.keyboard.press("Control+Space")
    wait_js(page, "document.getElementById('player').paused", 10_000)
    page.context.close()


def test_two_reviewers_merge_then_conflict(browser, server, archive):
    one = _page(browser, server, f"/edit/{KK_SHA[:12]}", "Aigul")
    two = _page(browser, server, f"/edit/{KK_SHA[:12]}", "Erlan")
    for page in (one, two):
        page.wait_for_selector("#segments .seg")
    one.locator("#segments .seg").nth(0).locator(".english").fill("My father was held in the camp")
    one.click("#save")
    expect(one.locator("#status")).to_contain_text("saved revision")
    two.locator("#segments .seg").nth(1).locator(".english").fill("Two years went by")
    two.click("#save")
    expect(two.locator("#status")).to_contain_text("merged")
    segments = Transcript.load(find_bundle(archive, KK_SHA) / TRANSCRIPT).segments
    assert segments[0].translation == "My father was held in the camp" and segments[0].english_source == "edited"
    assert segments[1].translation == "Two years went by"

    one.reload()
    one.wait_for_selector("#segments .seg")
    one.locator("#segments .seg").nth(1).locator(".english").fill("Two long years")
    two.locator("#segments .seg").nth(1).locator(".english").fill("Twenty-four months")
    one.click("#save")
    expect(one.locator("#status")).to_contain_text("saved revision")
    two.click("#save")
    two.wait_for_selector("#conflicts:not([hidden]) .conflict")
    conflict = two.locator("#conflicts .conflict")
    assert "Two long years" in conflict.locator(".theirs").inner_text()
    assert "Twenty-four months" in conflict.locator(".mine").inner_text()
    conflict.locator(".mine button").click()
    two.click("#save")
    expect(two.locator("#status")).to_contain_text("saved revision")
    assert Transcript.load(find_bundle(archive, KK_SHA) / TRANSCRIPT).segments[1].translation == "Twenty-four months"
    revise = [e for e in custody.read(archive, KK_SHA) if e["event"] == "revise"]
    assert [e["author"] for e in revise] == ["Aigul", "Erlan", "Aigul", "Erlan"]
    for page in (one, two):
        page.context.close()


def test_an_edited_original_is_offered_the_machines_english(browser, server, archive):
    page = _page(browser, server, f"/edit/{KK_SHA[:12]}")
    page.wait_for_selector("#segments .seg")
    seg = page.locator("#segments .seg").nth(0)
    reviewer_english = seg.locator(".english").input_value()
    seg.locator(".original").fill("Менің әкем лагерьде екі жыл болды")
    seg.locator(".english").focus()  # leaving the original asks the machine
    expect(seg.locator(".offer")).to_be_visible()
    offered = seg.locator(".offer-text").inner_text().split(": ", 1)[1]
    assert seg.locator(".english").input_value() == reviewer_english, "the offer never replaces by itself"
    seg.locator(".use-offer").click()
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision")
    saved = Transcript.load(find_bundle(archive, KK_SHA) / TRANSCRIPT).segments[0]
    assert (saved.translation, saved.english_source) == (offered, "machine")
    page.context.close()


def test_keyboard_only_and_hostile_text_stays_text(browser, server, archive):
    page = _page(browser, server, f"/edit/{KK_SHA[:12]}")
    page.wait_for_selector("#segments .seg")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#segments .seg").nth(2).locator(".original").input_value() == HOSTILE
    width = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert width, "a 5,000-character word wraps instead of stretching the page"
    page.locator("#segments .seg").nth(0).locator(".original").focus()
    page.keyboard.press("Alt+N")  # the next flagged segment
    assert page.evaluate("document.activeElement.closest('.seg').dataset.index") == "1"
    page.keyboard.press("Alt+C")
    page.keyboard.press("Control+S")
    expect(page.locator("#status")).to_contain_text("saved revision")
    assert Transcript.load(find_bundle(archive, KK_SHA) / TRANSCRIPT).segments[1].checked
    assert page.locator("#keys").inner_text().count("Alt+") >= 4, "the shortcuts are shown on the page"
    page.context.close()


@pytest.mark.parametrize("point", ["publish:staged", "publish:retired"])
def test_killed_during_a_save_leaves_one_whole_revision(archive, tmp_path, point):
    """SIGKILL with the new bundle staged, or with the old one moved aside: the workspace (or `repair`)
    finds one whole revision, and it verifies."""
    copy = tmp_path / "archive"
    shutil.copytree(archive, copy, symlinks=True)
    bundle = find_bundle(copy, KK_SHA)
    newest = revisions.newest(bundle).number
    script = ("from pathlib import Path; from pipeline.review import revisions; "
              "from pipeline.review.save import save_revision; from pipeline.archive.bundle import find_bundle\n"
              f"b = find_bundle(Path({str(copy)!r}), {KK_SHA!r}); r = revisions.newest(b)\n"
              "segs = [dict(s) for s in r.segments]; segs[0]['text'] = 'killed mid-save'\n"
              f"save_revision(b.parent, {KK_SHA!r}, base=r.sha256, author='K', segments=segs)\n")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TESTIMONY_KILL_AT": point})
    assert done.returncode == -signal.SIGKILL
    # verify only reads: repair puts the retired bundle back (the other bundle was hand-edited above, on purpose)
    for command in (["repair"], ["verify", KK_SHA[:12]]):
        done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *command, "--out", str(copy)],
                              capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    after = find_bundle(copy, KK_SHA)
    assert revisions.newest(after).number == newest
    assert Transcript.load(after / TRANSCRIPT).segments[0].text != "killed mid-save"
