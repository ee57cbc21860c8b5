"""The quality page (issue 22) in real Chromium against a real `testimony review`: an admin sees the
figures of `testimony quality` and both plots; a Uyghur reviewer sees only Uyghur figures; a reader is
refused. The archive holds four published bundles corrected through the real save, checked in two
months (the save's clock is set back for one), so the per-model line has two points."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.testclient import TestClient

from pipeline.archive import access, catalog
from pipeline.archive.bundle import find_bundle
from pipeline.evaluation import extra
from pipeline.review import accounts, revisions, save, server
from pipeline.run import process

from .conftest import review_server, sign_in
from .test_catalog import transcript
from .test_team import _fetch

pytestmark = pytest.mark.slow

ACCOUNTS = {"archivist": ("admin", ()), "dilnur": ("reviewer", ("ug",)), "reader": ("reader", ())}
# name, language, model, month of the check, draft lines, checked lines
RECORDINGS = [
    ("october.mp4", "kk", "base", "2026-10", ["бірінші сөйлем мұнда", "екінші сөйлем"],
     ["бірінші сөз мұнда", "екінші сөйлем"]),
    ("november.mp4", "kk", "base", "2026-11", ["бір екі үш төрт", "бес алты"], ["бір екі үш бес", "бес алты жеті"]),
    ("adapted.mp4", "kk", "adapted-kk", "2026-11", ["ол қайтып келмеді", "екі жыл"],
     ["ол қайтып келмеді", "екі жыл Тұрсын"]),
    ("uyghur.mp4", "ug", "base", "2026-11", ["بىرىنچى جۈملە", "ئىككىنچى جۈملە"], ["بىرىنچى سۆز", "ئىككىنچى جۈملە"]),
]


def _password(name: str) -> str:
    return f"{name}'s own password"


def _checked(archive, name, language, model, month, drafts, checked) -> str:
    """Publish a draft made by `model`, then save every segment corrected and checked in `month`."""
    t = transcript(name, language, drafts, [f"machine english {n}" for n in range(len(drafts))])
    t.models = {"asr": {"name": model}}
    process.publish_transcript(archive, t)
    bundle = find_bundle(archive, t.source.sha256)
    newest = revisions.newest(bundle)
    segments = [{**s, "text": text, "checked": True} for s, text in zip(newest.segments, checked)]
    segments[0].update(translation="a person's English", english_source="edited")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(save, "_now", lambda: f"{month}-15T12:00:00+00:00")
        save.save_revision(archive, t.source.sha256, base=newest.sha256, author="archivist", segments=segments)
    return t.source.sha256[:12]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    archive = tmp_path_factory.mktemp("quality") / "archive"
    for name, (role, languages) in ACCOUNTS.items():
        accounts.add(archive, name, role, languages, _password(name), must_change=False)
    ids = {r[0]: _checked(archive, *r) for r in RECORDINGS}
    catalog.sync(archive)
    with review_server(archive) as url:
        yield {"archive": archive, "url": url, "ids": ids}


def _quality_page(browser: Browser, site: dict, name: str) -> tuple[Page, list[str], list[str]]:
    """Sign in, open the quality page; every URL the page asked for and every console error, kept."""
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    asked, errors = [], []
    page.on("request", lambda r: asked.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(
        "Failed to load resource") else None)  # Chromium's own /favicon.ico: no page asked for it
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, site["url"], name, _password(name))
    page.goto(site["url"] + "/quality")
    page.wait_for_selector("body[data-answered]", state="attached")
    return page, asked, errors


def _shown(page: Page, table: str, key: str, column: str) -> str:
    return page.locator(f"#t-{table} tr[data-key='{key}'] td[data-column='{column}']").inner_text()


def test_an_admin_sees_the_figures_and_both_plots(browser, site):
    page, asked, errors = _quality_page(browser, site, "archivist")
    data = json.loads(_fetch(page, "GET", "/api/quality")["text"])
    kk = data["groups"]["language"]["kk"]
    assert data["checked_segments"] == 8 and kk["segments"] == 6
    shown = _shown(page, "language", "kk", "WER")
    assert abs(float(shown.rstrip("%")) / 100 - kk["wer"]) < 0.0005, (shown, kk["wer"])
    assert _shown(page, "model", "adapted-kk (kk)", "Words") == str(data["groups"]["model"]["adapted-kk (kk)"]["words"])
    assert page.locator("#t-recording tbody tr").count() == 4
    assert page.locator("#t-month tbody tr").count() == 2, "October and November"
    assert page.locator("#t-english tbody tr").count() == 2, "kk and ug: English a person edited"
    assert "сөйлем" in page.locator("#t-corrections").inner_text()
    assert page.locator("#glossary-lines").inner_text().split("\n") == [n["name"] for n in data["glossary_lines"]]
    assert "Тұрсын" in page.locator("#glossary-lines").inner_text()

    series = page.locator("#plot-time svg g.series")
    assert series.count() == len(data["model_month"]) == 3, "a line per model"
    base_kk = page.locator("#plot-time g.series[data-model='base (kk)'] circle")
    assert base_kk.count() == 2, "base on Kazakh was checked in two months"
    bars = page.locator("#plot-recording svg g.bar")
    assert bars.count() == len(data["groups"]["recording"]) == 4, "a bar per recording"
    assert sorted(bars.evaluate_all("bs => bs.map(b => b.dataset.recording)")) == sorted(site["ids"].values())

    assert all(u.startswith(site["url"] + "/") for u in asked), [u for u in asked if not u.startswith(site["url"])]
    assert errors == [], "no script or style refused by the page's CSP, no failed request"
    assert any(e["action"] == "view" and e.get("detail", {}).get("page") == "quality"
               for e in access.entries(site["archive"], who="archivist")), "the look is in the access log"


def test_the_workspace_header_links_the_page_for_admins_and_reviewers_only(browser, site):
    for name, linked in (("archivist", True), ("dilnur", True), ("reader", False)):
        page = browser.new_context().new_page()
        sign_in(page, site["url"], name, _password(name))
        link = page.locator("#quality-link")
        if linked:
            link.click()
            page.wait_for_url(site["url"] + "/quality")
        else:
            expect(page.locator("#who-name")).to_contain_text("reader (reader)")  # the page knows who, then
            assert link.is_hidden()


def test_a_reviewer_sees_only_their_languages_figures(browser, site):
    page, _asked, _errors = _quality_page(browser, site, "dilnur")
    assert page.locator("#t-language tbody tr").count() == 1
    assert page.locator("#t-language tr[data-key='ug']").count() == 1
    assert page.locator("#plot-time svg g.series").count() == 1
    assert page.locator("#plot-recording svg g.bar").count() == 1
    text = page.locator("#quality").inner_text()
    kazakh = [i for n, i in site["ids"].items() if n != "uyghur.mp4"]
    assert not [i for i in kazakh if i in text] and "сөйлем" not in text and "Тұрсын" not in text
    assert [o for o in page.locator("#language option").all_inner_texts() if o != "all I may see"] == ["ug"]
    refused = _fetch(page, "GET", "/api/quality?language=kk")
    assert refused["status"] == 403 and "сөйлем" not in refused["text"]


def test_a_reader_is_refused(browser, site):
    page, asked, _errors = _quality_page(browser, site, "reader")
    answer = _fetch(page, "GET", "/api/quality")
    assert answer["status"] == 403
    assert json.loads(answer["text"])["error"] == "your role does not allow you to see the quality figures"
    assert page.locator("#message").inner_text() == "your role does not allow you to see the quality figures"
    assert page.locator("#figures").is_hidden() and page.locator("#plot-time svg").count() == 0
    assert all(u.startswith(site["url"] + "/") for u in asked)


def test_without_the_scorers_the_api_says_which_extra_to_install(site, monkeypatch):
    """In process (Starlette's client, basic auth): a missing scorer is a 503 with the CLI's own line;
    a bad date is a 400. Nothing is scored either way."""
    client = TestClient(server.build_app(site["archive"], origin="http://testserver"), base_url="http://testserver")
    auth = ("archivist", _password("archivist"))
    assert client.get("/api/quality?since=last week", auth=auth).status_code == 400
    monkeypatch.setattr(extra, "SCORERS", ("jiwer", "no_such_scorer_installed"))
    answer = client.get("/api/quality", auth=auth)
    assert answer.status_code == 503
    assert answer.json()["error"] == extra.missing_scorers_hint("quality")
    assert "pip install 'testimony[eval]'" in answer.json()["error"]
