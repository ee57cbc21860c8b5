"""A team in real Chromium against a real `testimony review`: an admin, a Kazakh reviewer, a second
Kazakh reviewer, a Uyghur reviewer and a reader, each signing in on the sign-in page. Each can do what
the role allows and gets a 403 for the rest with the bundle unchanged; the checker cannot approve their
own work and a second reviewer can; the access log names who saw what and `verify` catches an edit of it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from pipeline.archive import access, catalog
from pipeline.archive.bundle import TRANSCRIPT, find_bundle
from pipeline.review import accounts, revisions

from .conftest import review_server, sign_in
from .test_flow import _free_port
from .test_signin import _publish

pytestmark = pytest.mark.slow

TEAM = {"archivist": ("admin", ()), "aigerim": ("reviewer", ("kk",)), "bolat": ("reviewer", ("kk",)),
        "dilnur": ("reviewer", ("ug",)), "reader": ("reader", ())}


def _password(name: str) -> str:
    return f"{name}'s own password"


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> dict:
    archive = tmp_path_factory.mktemp("team") / "archive"
    shas = {"kk": _publish(archive, "kazakh witness.mp4", "kk"), "ug": _publish(archive, "uyghur witness.mp4", "ug")}
    catalog.sync(archive)
    for name, (role, languages) in TEAM.items():
        accounts.add(archive, name, role, languages, _password(name), must_change=False)
    with review_server(archive) as url:
        yield {"archive": archive, "url": url, "sha": shas}


def _as(browser: Browser, team: dict, name: str) -> Page:
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    sign_in(page, team["url"], name, _password(name))
    return page


def _fetch(page: Page, method: str, path: str, body: dict | None = None) -> dict:
    """A request from the signed-in page itself (its cookie, its token): what the page's own script could send."""
    return page.evaluate("""async ([method, path, body]) => {
        const token = document.querySelector('meta[name="testimony-token"]').content;
        const init = body === null ? {method} : {method, body: JSON.stringify(body),
            headers: {"Content-Type": "application/json", "X-Testimony-Token": token}};
        const response = await fetch(path, init);
        return {status: response.status, text: await response.text()};
    }""", [method, path, body])


def _transcript(team: dict, language: str) -> bytes:
    return (find_bundle(team["archive"], team["sha"][language]) / TRANSCRIPT).read_bytes()


def test_a_kazakh_reviewer_claims_checks_and_cannot_approve_their_own_work(browser, team):
    kk, ug = team["sha"]["kk"][:12], team["sha"]["ug"][:12]
    page = _as(browser, team, "aigerim")
    expect(page.locator("#who-name")).to_contain_text("aigerim (reviewer: kk)")
    expect(page.locator("#bundles tbody tr")).to_have_count(1)  # her language only
    queue = page.locator("#queue li")
    expect(queue).to_have_count(1)
    assert "kazakh witness.mp4" in queue.first.inner_text()
    expect(page.locator("#progress tbody tr")).to_have_count(2)
    queue.first.locator("button.claim").click()
    page.wait_for_url(f"**/edit/{kk}")
    expect(page.locator("#flow-state")).to_have_text("in review, held by aigerim")

    before = _transcript(team, "ug")
    ug_bundle = json.loads(_fetch(page, "GET", f"/api/bundles/{ug}")["text"] or "{}")
    assert ug_bundle.get("error") and "uyghur" not in json.dumps(ug_bundle)
    saved = _fetch(page, "POST", f"/api/bundles/{ug}/revisions", {"base": "0" * 64, "segments": []})
    assert saved["status"] == 403 and _transcript(team, "ug") == before, "another language: refused, unchanged"

    for box in page.locator("#segments .seg .checked").all():
        box.check()
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved revision 1")
    assert revisions.newest(find_bundle(team["archive"], team["sha"]["kk"])).author == "aigerim"
    page.click("#flow button[data-action=check]")
    expect(page.locator("#flow-state")).to_have_text("checked by aigerim")
    assert page.locator("#flow button[data-action=approve]").is_hidden()
    own = _fetch(page, "POST", f"/api/bundles/{kk}/state", {"action": "approve"})
    assert own["status"] == 403, "the checker cannot approve their own work"
    page.context.close()


def test_a_reader_sees_nothing_unapproved_then_a_second_reviewer_approves(browser, team):
    kk = team["sha"]["kk"][:12]
    reader = _as(browser, team, "reader")
    expect(reader.locator("#page-info")).to_have_text("0–0 of 0")
    assert reader.locator("#queue-section").is_hidden()
    before = _transcript(team, "kk")
    for method, path, body in (("GET", f"/api/bundles/{kk}", None), ("GET", f"/media/{kk}", None),
                               ("GET", f"/api/bundles/{kk}/document?format=csv", None),
                               ("POST", f"/api/bundles/{kk}/revisions", {"base": "0" * 64, "segments": []}),
                               ("POST", f"/api/bundles/{kk}/state", {"action": "claim"})):
        answer = _fetch(reader, method, path, body)
        assert answer["status"] == 403 and "kazakh" not in answer["text"], (method, path, answer)
    assert _transcript(team, "kk") == before, "the reader's refused requests changed nothing"

    second = _as(browser, team, "bolat")
    second.goto(f"{team['url']}/edit/{kk}")
    expect(second.locator("#flow-state")).to_have_text("checked by aigerim")
    second.click("#flow button[data-action=approve]")
    expect(second.locator("#flow-state")).to_have_text("approved by bolat (checked by aigerim)")
    second.context.close()

    reader.goto(team["url"] + "/")
    expect(reader.locator("#bundles tbody tr")).to_have_count(1)
    reader.goto(f"{team['url']}/edit/{kk}")
    reader.wait_for_selector("#segments .seg")
    assert reader.locator("#save").is_hidden() and reader.evaluate("document.getElementById('player').src") == ""
    assert _fetch(reader, "GET", f"/api/bundles/{kk}/document?format=csv")["status"] == 200
    assert _fetch(reader, "GET", f"/media/{kk}")["status"] == 403, "never the original"
    reader.context.close()


def test_the_access_log_names_who_saw_what_and_verify_catches_an_edit(browser, team, tmp_path):
    kk = team["sha"]["kk"][:12]
    out = tmp_path / "evidence.zip"
    subprocess.run([sys.executable, "-m", "pipeline.cli.main", "export", kk, "--out", str(team["archive"]), "-o",
                    str(out)], check=True, capture_output=True)
    events = access.entries(team["archive"])
    assert {(e["who"], e["action"]) for e in events} >= {("reader", "view"), ("aigerim", "sign-in"),
                                                         ("bolat", "state"), ("reader", "download")}
    assert any(e["action"] == "export" and e.get("bundle") == kk for e in events)
    shown = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "access-log", "--out", str(team["archive"]),
                            "--who", "reader"], capture_output=True, text=True, check=True).stdout
    assert "view" in shown and "aigerim" not in shown
    every = b"".join(p.read_bytes() for p in team["archive"].rglob("*") if p.is_file())
    assert not any(_password(n).encode() in every for n in TEAM), "no password in any file of the archive"

    log = access.log_path(team["archive"])
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"reader"', b'"nobody"').replace(b'"aigerim"', b'"nobody"')
    log.write_bytes(b"".join(lines))
    verify = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "verify", "--out", str(team["archive"])],
                            capture_output=True, text=True)
    assert verify.returncode != 0 and "access" in (verify.stdout + verify.stderr)


def test_signing_out_ends_the_session(browser, team):
    page = _as(browser, team, "dilnur")
    page.click("#signout")
    page.wait_for_url("**/signin")
    assert _fetch(page, "GET", "/api/bundles")["status"] == 401
    page.goto(team["url"] + "/")
    page.wait_for_url("**/signin")
    page.context.close()


def test_an_archive_with_the_old_shared_credentials_is_converted(tmp_path):
    archive = tmp_path / "archive"
    _publish(archive, "kazakh witness.mp4", "kk")
    (archive / ".credentials").write_text("reviewer:the old shared secret\n", encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "review", "--out", str(archive), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/bundles", auth=("reviewer", "the old shared secret"),
                                   timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["total"] == 1
        assert not (archive / ".credentials").exists()
        assert accounts.get(archive, "reviewer").role == "admin"
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert "the old shared credentials are now the admin account 'reviewer'" in output
    assert "the old shared secret" not in output
