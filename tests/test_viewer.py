"""The bundle viewer (index.html) in a real headless Chromium, opened from disk with the network cut off."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, Page

from pipeline.archive.bundle import MANIFEST, write_bundle
from pipeline.archive.viewer import INDEX, linked_video, render_viewer, video_href
from pipeline.stages.media import probe, wav_duration
from pipeline.transcript import LOW_CONFIDENCE, POSSIBLE_HALLUCINATION, UNTRANSLATED, Segment, Source, Transcript

from . import media_factory as mf

HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <!-- & »'
UYGHUR = "مېنىڭ دادام لاگېردا ئىدى"  # "my father was in the camp"
SEGMENTS = [  # (start, end, original, English, flags)
    (0.0, 1.5, "Менің әкем лагерьде болды.", "My father was in the camp.", []),
    (1.5, 3.0, UYGHUR, "He was there for two years.", [LOW_CONFIDENCE]),
    (3.0, 4.5, HOSTILE, None, [POSSIBLE_HALLUCINATION, UNTRANSLATED]),
]



def wait_js(page: Page, expression: str, timeout_ms: int = 5000) -> None:
    """Poll `expression` from outside the page: Playwright's wait_for_function evaluates its
    predicate with eval(), which the viewer's Content-Security-Policy rightly refuses."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_ms} ms: {expression}")
        time.sleep(0.05)

def _transcript(video: Path) -> Transcript:
    segments = [Segment(id=n, start=s, end=e, text=text, translation=en, avg_logprob=-0.4,
                        no_speech_prob=0.1, flags=list(flags))
                for n, (s, e, text, en, flags) in enumerate(SEGMENTS)]
    return Transcript(
        source=Source(file_name=video.name, sha256=hashlib.sha256(video.read_bytes()).hexdigest(),
                      size=video.stat().st_size, duration=probe(video).duration, audio_track={"index": 1}),
        language="kk", detected_language="kk", language_probability=0.93,
        models={"asr": {"engine": "openai-whisper", "engine_version": "20250625", "name": "base",
                        "whisper_token": "kk"},
                "translation": {"engine": "argostranslate", "route": ["kk", "en"],
                                "packages": [{"name": "kk_en"}]}},
        segments=segments, created="2025-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A real H.264/AAC video of 5.5 s or more; its name needs URL-quoting (Cyrillic, a space)."""
    root = tmp_path_factory.mktemp("viewer-media")
    speech = mf.speak(mf.udhr("kk")[3], "kk", root / "kk.wav")
    tail = max(0.5, 5.5 - wav_duration(speech))
    return mf.video_from_audio(speech, root / "Куә сөзі 1.mp4", tail_silence=tail)


@pytest.fixture(scope="module")
def bundle(video, tmp_path_factory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("viewer-archive") / "archive", _transcript(video), video=video)




class Opened:
    """A page opened from a file:// URL, with every console error and every non-file request kept."""

    def __init__(self, browser: Browser, index: Path, fragment: str = ""):
        self.context = browser.new_context()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", self._request)
        self.page.on("dialog", lambda dialog: (self.errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        self.page.goto(index.as_uri() + fragment)
        self.page.wait_for_selector("body[data-ready=true]")

    def _request(self, request) -> None:
        if not request.url.startswith(("file:", "data:", "blob:")):
            self.outside.append(request.url)

    def _route(self, route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def visible_ids(self) -> list[str]:
        return self.page.eval_on_selector_all("li.seg:not([hidden])", "els => els.map(e => e.dataset.id)")

    def current_id(self) -> str | None:
        return self.page.evaluate("() => document.querySelector('li.seg.current')?.dataset.id ?? null")

    def close(self) -> None:
        """Asserts the page stayed offline and quiet, then closes it."""
        try:
            assert self.outside == [], f"requests left the machine: {self.outside}"
            assert self.errors == [], f"console errors: {self.errors}"
        finally:
            self.context.close()


@pytest.fixture
def opened(browser, bundle):
    page = Opened(browser, bundle / INDEX)
    yield page
    page.close()


def test_bundle_carries_viewer_with_relative_link_and_safe_data(bundle, video):
    manifest = json.loads((bundle / MANIFEST).read_text())
    page = (bundle / INDEX).read_bytes()
    assert manifest["files"][INDEX] == hashlib.sha256(page).hexdigest()
    html = page.decode("utf-8")
    assert "</script><script>window.__pwned" not in html and "<img src=x" not in html
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src &#x27;none&#x27;" in html
    assert not re.search(r"\b(?:src|href)=[\"']?(?:https?:)?//", html), "no external resource"
    data = re.search(r'<script type="application/json" id="transcript-data">(.*?)</script>', html, re.S)
    embedded = json.loads(data.group(1))
    assert [s["text"] for s in embedded["transcript"]["segments"]] == [s[2] for s in SEGMENTS]
    href = embedded["video"]
    assert href.startswith("../") and href.endswith("/%D0%9A%D1%83%D3%99%20%D1%81%D3%A9%D0%B7%D1%96%201.mp4")
    assert (bundle / unquote(href)).resolve() == video.resolve()


def test_link_is_none_when_video_missing_and_kept_on_rewrite(bundle, video, tmp_path):
    assert video_href(tmp_path / "gone.mp4", bundle) is None
    assert video_href(None, bundle) is None
    transcript = Transcript.load(bundle / "transcript.json")
    again = write_bundle(bundle.parent, transcript)  # e.g. a retranslation, which does not know the source
    assert again == bundle
    assert 'id="transcript-data">' in (bundle / INDEX).read_text(encoding="utf-8")
    assert json.loads(re.search(r'id="transcript-data">(.*?)</script>', (bundle / INDEX).read_text(
        encoding="utf-8"), re.S).group(1))["video"] == video_href(video, bundle)


def test_link_to_non_utf8_file_name_round_trips(video, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path / "videos") + b"/witness-\xff.mp4"))
    odd.parent.mkdir()
    odd.write_bytes(b"not really a video")
    folder = tmp_path / "archive" / "bundle"
    folder.mkdir(parents=True)
    href = video_href(odd, folder)
    assert href == "../../videos/witness-%FF.mp4"
    (folder / INDEX).write_text(render_viewer(_transcript(video), href), encoding="utf-8")
    assert linked_video(folder).resolve() == odd.resolve()


def test_header_and_video_load(opened, video):
    page = opened.page
    wait_js(page, "document.getElementById('video').readyState >= 1", timeout_ms=15000)
    duration = probe(video).duration
    assert page.evaluate("document.getElementById('video').duration") == pytest.approx(duration, abs=0.3)
    header = page.inner_text("header")
    assert "Куә сөзі 1.mp4" in header and "base" in header and "kk" in header and f"{duration:.1f} s" in header
    sha = page.inner_text("#sha256")
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    assert page.is_hidden("#video-note")


def test_click_seeks_plays_and_timeupdate_moves_highlight(opened):
    page = opened.page
    wait_js(page, "document.getElementById('video').readyState >= 1", timeout_ms=15000)
    page.evaluate("""() => { const v = document.getElementById('video');
        v.muted = true; window.__seeks = [];
        v.addEventListener('seeking', () => window.__seeks.push(v.currentTime)); }""")
    page.click("li.seg[data-id='1'] p.original")
    wait_js(page, "window.__seeks.length > 0")
    assert page.evaluate("window.__seeks[0]") == pytest.approx(1.5, abs=0.1)
    assert opened.current_id() == "1"
    wait_js(page, "!document.getElementById('video').paused", timeout_ms=10000)

    page.evaluate("""() => { const v = document.getElementById('video'); v.pause();
        v.currentTime = 3.6; v.dispatchEvent(new Event('timeupdate')); }""")
    assert opened.current_id() == "2"
    assert page.get_attribute("li.seg[data-id='2']", "aria-current") == "true"
    page.evaluate("""() => { const v = document.getElementById('video');
        v.currentTime = 0.4; v.dispatchEvent(new Event('timeupdate')); }""")
    assert opened.current_id() == "0"


@pytest.mark.parametrize("query, expected, marked", [
    ("ӘКЕМ", ["0"], "әкем"),  # Kazakh Cyrillic, upper case
    ("CAMP", ["0"], "camp"),  # English
    ("دادام", ["1"], "دادام"),  # Uyghur Arabic script
    ("YEARS", ["1"], "years"),  # the English of an Arabic-script segment
    ("<img", ["2"], "<img"),  # hostile text is only text
    ("nowhere", [], None),
])
def test_search_filters_both_languages(opened, query, expected, marked):
    page = opened.page
    page.fill("#search", query)
    assert opened.visible_ids() == expected
    marks = page.eval_on_selector_all("li.seg:not([hidden]) mark", "els => els.map(e => e.textContent)")
    assert (marks[0].lower() if marks else None) == marked
    assert f"{len(expected)} of 3" in page.inner_text("#count")
    page.fill("#search", "")
    assert opened.visible_ids() == ["0", "1", "2"]
    assert page.eval_on_selector_all("mark", "els => els.length") == 0


def test_flags_scripts_and_hostile_text(opened, tmp_path):
    page = opened.page
    assert page.get_attribute("li.seg[data-id='1']", "class").split() == ["seg", "low-confidence"]
    assert page.is_visible("li.seg[data-id='1'] .badge.low-confidence")
    assert "possible-hallucination" in page.get_attribute("li.seg[data-id='2']", "class")
    assert "low confidence" in page.inner_text(".legend") and "possible hallucination" in page.inner_text(".legend")
    uyghur = page.locator("li.seg[data-id='1'] p.original")
    assert uyghur.get_attribute("dir") == "rtl" and uyghur.get_attribute("lang") == "kk"
    assert page.get_attribute("li.seg[data-id='0'] p.english", "lang") == "en"
    assert page.inner_text("li.seg[data-id='2'] p.english") == "untranslated"

    assert page.text_content("li.seg[data-id='2'] p.original") == HOSTILE
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.eval_on_selector_all("#segments img, #segments script", "els => els.length") == 0

    shot = page.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "viewer.png").stat().st_size > 1000

    # The policy itself: a script injected after load is refused (a CSP console error, expected here).
    ran = page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__pwned = 3'; document.body.append(s); return typeof window.__pwned; }""")
    assert ran == "undefined"
    assert any("Content Security Policy" in e for e in opened.errors)
    opened.errors.clear()


def test_missing_video_is_explained_and_transcript_still_shown(browser, video, tmp_path):
    transcript = _transcript(video)
    unlinked = write_bundle(tmp_path / "a", transcript)
    copy = shutil.copy(video, tmp_path / "copy.mp4")
    moved = write_bundle(tmp_path / "b", transcript, video=copy)
    Path(copy).unlink()  # linked when the bundle was made, gone since
    for index, reason in ((unlinked / INDEX, "not reachable"), (moved / INDEX, "could not be loaded")):
        page = Opened(browser, index)
        try:
            page.page.wait_for_selector("#video-note:not([hidden])", timeout=15000)
            note = page.page.inner_text("#video-note")
            assert reason in note and video.name in note and transcript.source.sha256 in note
            assert page.page.is_hidden("#video")
            assert page.visible_ids() == ["0", "1", "2"]
            page.page.click("li.seg[data-id='1'] p.original")
            assert page.current_id() == "1"
            page.errors[:] = [e for e in page.errors if "ERR_FILE_NOT_FOUND" not in e]
        finally:
            page.close()


def test_render_viewer_needs_no_bundle(video):
    html = render_viewer(_transcript(video), None)
    assert html.startswith("<!DOCTYPE html>") and "{{" not in html.split("<script", 1)[0]
