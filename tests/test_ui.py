"""The Prefect UI (V1) of `testimony serve` in a real headless Chromium: a run started from the deployment's
form, followed to Completed, and its transcript artifact read on screen, with nothing leaving 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from . import media_factory as mf
from .test_flow import _free_port
from .test_serve import API_AUTH, AUTH_ENV

pytestmark = pytest.mark.slow

DEPLOYMENTS = {"process-video", "inbox", "process-folder", "retranslate", "adapt"}
# Missing icons the V1 UI asks its own server for: the browser's favicon probe, and a state icon it
# requests before the run's state has loaded. Both are 404s from 127.0.0.1 and change nothing on screen.
HARMLESS_404 = {"/favicon.ico", "/ico/undefined.svg"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def english_video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ui-media")
    mf.speak(mf.udhr("en")[3], "en", root / "en.wav")  # "Everyone has the right to life, liberty ..."
    return mf.video_from_audio(root / "en.wav", root / "testimony en.mp4", lead_silence=0.5)


@pytest.fixture(scope="module")
def service(tmp_path_factory, converted_base):
    """`testimony serve` in its own process, with its own model store, data, Prefect home and port."""
    root = tmp_path_factory.mktemp("ui-service")
    store = root / "models"
    (store / "whisper").mkdir(parents=True)
    shutil.copy(converted_base, store / "whisper" / "base.pt")
    inbox, archive = root / "inbox", root / "archive"
    inbox.mkdir()
    port = _free_port()
    env = {**os.environ, "TESTIMONY_MODELS": str(store), "TESTIMONY_DATA": str(root / "data"),
           "PREFECT_HOME": str(root / "prefect"), **AUTH_ENV,
           "TESTIMONY_UI_TEXT": "1"}  # Prefect's home is set outside the archive: show the text anyway
    env.pop("PREFECT_API_URL", None)
    log_path = root / "serve.log"
    log = open(log_path, "w")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--inbox", str(inbox), "--out",
                             str(archive), "--port", str(port), "--review-port", str(_free_port())],
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # a busy review port stops serve
    while "ready in" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() - began > 180:
            proc.kill()
            pytest.fail(f"serve did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    yield {"ui": f"http://127.0.0.1:{port}", "api": f"http://127.0.0.1:{port}/api", "archive": archive,
           "log": log_path}
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(timeout=60) == 0
    log.close()
    assert "testimony serve: stopped" in log_path.read_text()




class UI:
    """A browser context on the local UI: every request not to the service's 127.0.0.1 origin is aborted
    and recorded, every console error and page exception kept."""

    def __init__(self, browser: Browser, base: str, shots: Path):
        self.base, self.shots = base, shots
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.shot_paths: list[Path] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        # What the UI's own login form stores once a person types user:password (its Unauthenticated page).
        self.context.add_init_script(f"localStorage.setItem('prefect-password', btoa({':'.join(API_AUTH)!r}))")
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("dialog", lambda dialog: (self.errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))

    def _route(self, route) -> None:
        # Stricter than "127.0.0.1": only the service's own origin, so a UI that calls some other
        # local port (Prefect's default 4200, say) is caught too.
        if urlsplit(route.request.url).netloc == urlsplit(self.base).netloc:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        source = urlsplit(msg.location.get("url") or "")
        if (msg.text.startswith("Failed to load resource: the server responded with a status of 404")
                and source.hostname == "127.0.0.1" and source.path in HARMLESS_404):
            return
        self.errors.append(f"{msg.text} ({msg.location.get('url')})")

    def shot(self, name: str, *, full_page: bool = False) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=path, full_page=full_page)
        self.shot_paths.append(path)
        return path

    def check_offline_and_quiet(self) -> None:
        assert self.outside == [], f"requests went beyond {self.base}: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"
        for path in self.shot_paths:
            data = path.read_bytes()
            assert data.startswith(PNG) and len(data) > 5000, f"{path} is not a real screenshot"


@pytest.fixture
def ui(browser, service, tmp_path):
    opened = UI(browser, service["ui"], tmp_path)
    yield opened
    if opened.outside or opened.errors:  # shown with a failure that came first, e.g. a UI that never loaded
        print(f"requests beyond {opened.base}: {opened.outside}\nconsole errors: {opened.errors}")
    opened.context.close()


def _nav(page: Page, name: str) -> None:
    """A sidebar entry (the V1 UI gives its nav links role=button)."""
    page.get_by_role("button", name=name, exact=True).click()


def test_deployments_are_listed(ui, service):
    page = ui.page
    page.goto(service["ui"] + "/")
    page.wait_for_url("**/dashboard")
    breadcrumb = page.get_by_role("banner").get_by_role("navigation")
    expect(breadcrumb).to_have_text("Dashboard")  # the UI is up and talking to its API
    _nav(page, "Deployments")
    page.wait_for_url("**/deployments")
    expect(breadcrumb).to_have_text("Deployments")
    links = page.locator('a[href^="/deployments/deployment/"]')
    expect(links).to_have_count(len(DEPLOYMENTS))
    assert set(links.all_inner_texts()) == DEPLOYMENTS
    expect(page.get_by_text(f"{len(DEPLOYMENTS)} Deployments")).to_be_visible()
    ui.shot("deployments")
    ui.check_offline_and_quiet()


def open_run_form(page: Page, base: str) -> None:
    """The process-video deployment's page, then Run -> Custom run: its form, one field per parameter."""
    page.goto(base + "/deployments")
    page.locator('a[href^="/deployments/deployment/"]', has_text=re.compile(r"^process-video$")).click()
    page.wait_for_url("**/deployments/deployment/*")
    page.get_by_role("tablist").get_by_text("Description", exact=True).click()
    expect(page.get_by_text("Transcribe and translate one video")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Custom run").click()
    page.wait_for_url("**/run?**")


def form_field(page: Page, name: str):
    """A form field by its label's text (the labels' `for` points at no element)."""
    return page.locator(".schema-form-property").filter(
        has=page.locator(".schema-form-property__label").get_by_text(name, exact=True))


def test_custom_run_from_the_form_completes_and_shows_the_transcript(ui, service, english_video):
    page, api = ui.page, service["api"]
    open_run_form(page, service["ui"])

    def field(name: str):
        return form_field(page, name)

    video = field("video").locator("textarea")
    expect(video).to_be_empty()
    expect(field("out (Optional)").locator("textarea")).to_have_value(str(service["archive"]))  # deployment default
    expect(field("language (Optional)").locator("textarea")).to_have_value("auto")
    video.fill(str(english_video))
    run_name = page.locator("input[type=text]").first.input_value()  # the "Run Name" the form generated
    assert run_name
    ui.shot("custom-run-form", full_page=True)
    page.get_by_role("button", name="Submit").click()

    # The UI confirms with a toast (V1 shows it twice, for the one run it made) and lists the run in the
    # deployment's Runs tab; its link opens the run page. (The toasts' "View run" buttons overlap while
    # they slide in, so the list is the steadier way there.)
    expect(page.locator(".toast-flow-run-create").first).to_contain_text(f"{run_name} scheduled")
    page.wait_for_url("**/deployments/deployment/*")
    # The deployment page may list the new run twice (its runs list and a breadcrumb of the same run).
    page.get_by_role("link", name=run_name, exact=True).first.click()
    page.wait_for_url("**/runs/flow-run/*")
    run_id = urlsplit(page.url).path.rsplit("/", 1)[1]
    run_page = page.url
    expect(page.get_by_text(run_name, exact=True).first).to_be_visible()
    # Leave while it runs: the V1 run graph, redrawn live as task runs start and end, sometimes throws
    # "Cannot read properties of null (reading 'position')" in Prefect's own script (a race in the UI,
    # seen about one run in three here); the finished run's page is what a user comes back to.
    page.goto(service["ui"] + "/deployments")

    deadline = time.monotonic() + 240
    while (run := httpx.get(f"{api}/flow_runs/{run_id}", timeout=10, auth=API_AUTH).json())["state_type"] not in (
            "COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
        assert time.monotonic() < deadline, f"run still {run['state_type']}\n{service['log'].read_text()[-3000:]}"
        time.sleep(1)
    assert run["state_type"] == "COMPLETED", service["log"].read_text()[-3000:]
    page.goto(run_page)
    badge = page.locator(".state-badge").first
    expect(badge).to_have_text("Completed", timeout=30_000)
    ui.shot("run-completed")

    deployment = httpx.get(f"{api}/deployments/name/process-video/process-video", timeout=10, auth=API_AUTH).json()
    assert run["deployment_id"] == deployment["id"] and run["name"] == run_name
    assert run["parameters"]["video"] == str(english_video)
    assert run["parameters"]["out"] == str(service["archive"])
    # The open-source server records a creator only for runs an automation makes (from its request
    # headers) or the scheduler makes (the schedule): a run from the UI form has none, unlike the
    # watch folder's runs (type AUTOMATION). Its name being the one the form generated ties it to the form.
    assert run["created_by"] is None
    runs = httpx.post(f"{api}/flow_runs/filter", json={
        "deployments": {"id": {"any_": [deployment["id"]]}}}, timeout=10, auth=API_AUTH).json()
    assert [r["id"] for r in runs] == [run_id], "one submission, one run"

    # The run's Artifacts tab lists the transcript; its page renders the Markdown table.
    page.get_by_role("tablist").get_by_text("Artifacts", exact=True).click()
    card = page.get_by_text(re.compile(r"^transcript-[0-9a-f]{12}$"))
    expect(card).to_be_visible()
    expect(page.get_by_text("Linked transcript of testimony en.mp4")).to_be_visible()
    expect(page.get_by_text("testimony-archive", exact=True)).to_be_visible()
    ui.shot("run-artifacts")
    key = card.inner_text()
    card.click()
    page.wait_for_url("**/artifacts/artifact/*")
    expect(page.get_by_role("heading", name="testimony en.mp4", exact=True)).to_be_visible()
    cells = page.get_by_role("cell", name=re.compile(r"\bliberty\b", re.I))
    expect(cells).to_have_count(2)  # English speech is its own English: original and English columns
    cell = cells.last
    expect(cell).to_be_visible()
    expect(page.get_by_role("columnheader", name="English")).to_be_visible()
    bundle = next(service["archive"].glob(f"{key.removeprefix('transcript-')}-*"))
    expect(page.get_by_text(str(bundle), exact=True)).to_be_visible()
    ui.shot("transcript-artifact", full_page=True)

    artifact = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}},
                          timeout=10, auth=API_AUTH).json()
    assert len(artifact) == 1 and artifact[0]["flow_run_id"] == run_id
    assert cell.inner_text().strip() in artifact[0]["data"]
    ui.check_offline_and_quiet()


def test_without_credentials_the_ui_asks_for_them_and_shows_nothing(browser, service):
    """A browser that was never given user:password: the UI's own data calls are refused (401) and it
    shows its login form, no file name and no count; once the password is typed, the same calls answer."""
    context = browser.new_context()
    page = context.new_page()
    calls: list[tuple[str, int]] = []
    page.on("response", lambda r: urlsplit(r.url).path.startswith("/api/")
            and calls.append((urlsplit(r.url).path, r.status)))
    page.goto(service["ui"] + "/runs")
    login = page.get_by_placeholder("admin:pass")
    expect(login).to_be_visible()
    page.wait_for_load_state("networkidle")
    refused = [path for path, status in calls if path != "/api/health"]
    assert refused and all(status == 401 for path, status in calls if path != "/api/health"), calls
    shown = page.inner_text("body")
    assert ".mp4" not in shown and "testimony" not in shown.lower() and not re.search(r"\b[0-9a-f]{12}\b", shown)

    calls.clear()
    login.fill(":".join(API_AUTH))
    page.get_by_role("button", name="Login").click()
    expect(login).to_be_hidden()
    page.goto(service["ui"] + "/runs")
    page.wait_for_load_state("networkidle")
    assert any(status == 200 and "flow_runs" in path for path, status in calls), calls
    context.close()
