"""`testimony serve` as a user runs it: a real Prefect server, the watch folder, files dropped in many ways."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from . import media_factory as mf
from .test_flow import _free_port

pytestmark = pytest.mark.slow
UYGHUR_NAME = "گۇۋاھلىق بېرىش.mp4"
API_AUTH = ("tester", "tester-secret")  # serve's Prefect server and workspace refuse requests without these
AUTH_ENV = {"TESTIMONY_AUTH": ":".join(API_AUTH)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    mf.speak(mf.udhr("en")[3], "en", root / "en.wav")
    mf.speak(mf.udhr("ug-Arab")[3], "ug", root / "ug.wav")
    return {"en": mf.video_from_audio(root / "en.wav", root / "en.mp4", lead_silence=0.5),
            "en-2": mf.video_from_audio(root / "en.wav", root / "en-2.mp4", lead_silence=1.0),
            "ug": mf.video_from_audio(root / "ug.wav", root / "ug.mp4"),
            "big": mf.video_from_audio(root / "en.wav", root / "big.mp4", lead_silence=20.0)}


@pytest.fixture(scope="module")
def service(tmp_path_factory, converted_base, clips):
    """`testimony serve` in its own process, with one file already waiting in the inbox."""
    root = tmp_path_factory.mktemp("service")
    store = root / "models"
    (store / "whisper").mkdir(parents=True)
    shutil.copy(converted_base, store / "whisper" / "base.pt")
    inbox, archive = root / "inbox", root / "archive"
    inbox.mkdir()
    shutil.copy(clips["en"], inbox / "waiting before start.mp4")
    port, review_port = _free_port(), _free_port()
    env = {**os.environ, "TESTIMONY_MODELS": str(store), "TESTIMONY_DATA": str(root / "data"),
           "PREFECT_HOME": str(root / "prefect"), **AUTH_ENV,
           "TESTIMONY_UI_TEXT": "1"}  # Prefect's home is set outside the archive: show the text anyway
    env.pop("PREFECT_API_URL", None)
    log = open(root / "serve.log", "w")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--inbox", str(inbox), "--out",
                             str(archive), "--port", str(port), "--review-port", str(review_port),
                             "--settle", "1.5"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    while "ready in" not in (root / "serve.log").read_text():
        if proc.poll() is not None or time.monotonic() - began > 180:
            proc.kill()
            pytest.fail(f"serve did not start:\n{(root / 'serve.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield {"inbox": inbox, "archive": archive, "api": api, "log": root / "serve.log", "proc": proc,
           "review": f"http://127.0.0.1:{review_port}"}
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(timeout=60) == 0
    log.close()
    assert "testimony serve: stopped" in (root / "serve.log").read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)


def _arrivals(archive: Path) -> list[dict]:
    if not (archive / "catalog.sqlite").exists():
        return []
    con = sqlite3.connect(archive / "catalog.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM arrivals ORDER BY rowid")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _wait_for(service, names: set[str], timeout: float = 300) -> dict[str, dict]:
    """The arrival record of each file name, once all have one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {Path(a["path"]).name: a for a in _arrivals(service["archive"])}
        if names <= seen.keys():
            return {n: seen[n] for n in names}
        time.sleep(1)
    pytest.fail(f"not processed in {timeout} s: {names - seen.keys()}\n{service['log'].read_text()[-3000:]}")


def _inbox_runs(api: str) -> list[dict]:
    deployment = httpx.get(f"{api}/deployments/name/process-inbox-file/inbox", timeout=10, auth=API_AUTH).json()
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=10, auth=API_AUTH).json()
    return [r for r in runs if r["deployment_id"] == deployment["id"]]


def test_waiting_file_and_copy_give_bundle_catalog_artifact_and_run(service, clips):
    shutil.copy(clips["en-2"], service["inbox"] / "copied.mp4")
    records = _wait_for(service, {"waiting before start.mp4", "copied.mp4"})
    assert all(r["outcome"] == "processed" for r in records.values()), records
    bundle = next(service["archive"].glob(f"{_sha(clips['en-2'])[:12]}-*"))
    transcript = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert "liberty" in " ".join(s["text"] for s in transcript["segments"]).lower()

    artifacts = httpx.post(f"{service['api']}/artifacts/filter", json={
        "artifacts": {"key": {"any_": [f"transcript-{_sha(clips['en-2'])[:12]}"]}}}, timeout=10, auth=API_AUTH).json()
    assert artifacts and "liberty" in artifacts[0]["data"].lower() and str(bundle) in artifacts[0]["data"]
    edit = f"{service['review']}/edit/{bundle.name[:12]}"  # the links follow --review-port
    assert f"[{edit}]({edit})" in artifacts[0]["data"] and ":4300/" not in artifacts[0]["data"]
    assert f'"review":"{edit}"' in (bundle / "index.html").read_text(encoding="utf-8")
    table = httpx.get(f"{service['api']}/artifacts/testimony-archive/latest", timeout=10, auth=API_AUTH).json()
    assert "copied.mp4" in json.dumps(table["data"])

    runs = [r for r in _inbox_runs(service["api"]) if r["parameters"]["video"].endswith("copied.mp4")]
    assert len(runs) == 1 and runs[0]["state_type"] == "COMPLETED"
    assert runs[0]["created_by"]["type"] == "AUTOMATION", "the UI shows what started it"


def test_move_slow_copy_duplicate_and_uyghur_name(service, clips, tmp_path):
    inbox = service["inbox"]
    staged = service["inbox"].parent / "staged.mp4"
    shutil.copy(clips["ug"], staged)
    os.rename(staged, inbox / UYGHUR_NAME)  # moved in, with a name in Uyghur Arabic script

    data = clips["big"].read_bytes()
    with open(inbox / "slow copy.mp4", "wb") as f:  # a slow share: chunks with pauses under the settle time
        for start in range(0, len(data), len(data) // 8 + 1):
            f.write(data[start:start + len(data) // 8 + 1])
            f.flush()
            time.sleep(0.4)
    shutil.copy(clips["en"], inbox / "same content, other name.mp4")

    records = _wait_for(service, {UYGHUR_NAME, "slow copy.mp4", "same content, other name.mp4"})
    assert records[UYGHUR_NAME]["outcome"] == "processed"
    assert records["slow copy.mp4"]["outcome"] == "processed"
    assert records["same content, other name.mp4"]["outcome"].startswith("duplicate of ")
    first = next(service["archive"].glob(f"{_sha(clips['en'])[:12]}-*"))
    assert records["same content, other name.mp4"]["outcome"] == f"duplicate of {first.name}"

    slow_runs = [r for r in _inbox_runs(service["api"]) if r["parameters"]["video"].endswith("slow copy.mp4")]
    assert len(slow_runs) == 1, "one run per file, however slowly it arrived"
    assert not (inbox / "slow copy.mp4").exists(), "a processed file leaves the inbox"
    slow_bundle = next(service["archive"].glob(f"{_sha(inbox / 'done' / 'slow copy.mp4')[:12]}-*"))
    transcript = json.loads((slow_bundle / "transcript.json").read_text(encoding="utf-8"))
    assert "truncated" not in transcript["flags"], "read only once complete"
    assert next(service["archive"].glob(f"{_sha(inbox / 'done' / UYGHUR_NAME)[:12]}-*")).is_dir()
    assert (inbox / "done" / "same content, other name.mp4").is_file(), "a duplicate leaves the inbox too"


def test_burst_with_a_broken_file_among_good_ones(service, tmp_path):
    burst = tmp_path / "burst"
    burst.mkdir()
    names = []
    for n in range(20):  # distinct content: silence of different lengths, quick to process
        names.append(f"burst-{n:02d}.mp4")
        mf.silence_video(burst / names[-1], 1.0 + n * 0.1)
    broken = burst / "broken.mp4"
    broken.write_bytes(b"this is not a video, only text with a video's name\n" * 50)
    broken_sha = _sha(broken)
    for name in [*names[:10], "broken.mp4", *names[10:]]:
        shutil.copy(burst / name, service["inbox"] / name)

    records = _wait_for(service, {*names, "broken.mp4"}, timeout=400)
    assert all(records[n]["outcome"] == "processed" for n in names)
    assert records["broken.mp4"]["outcome"].startswith("failed: ")
    failed = service["inbox"] / "failed"
    assert _sha(failed / "broken.mp4") == broken_sha, "set aside, byte for byte"
    reason = (failed / "broken.mp4.reason.txt").read_text(encoding="utf-8")
    assert "not a video or audio file" in reason
    assert not (service["inbox"] / "broken.mp4").exists()
    assert service["proc"].poll() is None, "the service keeps going"
    bundles = {p.name.split("-", 1)[1] for p in service["archive"].iterdir() if p.name.endswith(tuple(
        n.removesuffix(".mp4") for n in names))}
    assert len(bundles) == 20


def test_a_language_folder_states_the_language_and_a_broken_sidecar_waits(service, clips, tmp_path):
    inbox = service["inbox"]
    assert (inbox / "kk").is_dir() and (inbox / "ug").is_dir(), "serve makes the language folders"
    video = tmp_path / "stated kazakh.mp4"
    mf.video_from_audio(_clip_audio(clips, tmp_path), video, lead_silence=0.7)
    shutil.copy(video, inbox / "kk" / video.name)
    (inbox / "told.mp4.json").write_text("{not json", encoding="utf-8")
    mf.video_from_audio(_clip_audio(clips, tmp_path), inbox / "told.mp4", lead_silence=1.3)

    records = _wait_for(service, {video.name, "told.mp4"})
    assert records[video.name]["outcome"] == "processed"
    bundle = next(service["archive"].glob(f"{_sha(video)[:12]}-*"))
    transcript = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert transcript["language"] == "kk" and transcript["detected_language"] is None
    assert records["told.mp4"]["outcome"].startswith("waiting: ") and "told.mp4.json" in records["told.mp4"]["outcome"]
    assert (inbox / "told.mp4").exists() and not (inbox / "failed" / "told.mp4").exists(), "it waits, kept"

    (inbox / "told.mp4.json").write_text('{"language": "en", "place": "Almaty"}', encoding="utf-8")
    told_sha = _sha(inbox / "told.mp4")
    os.utime(inbox / "told.mp4")  # touched: announced again
    deadline = time.monotonic() + 300
    while not (found := list(service["archive"].glob(f"{told_sha[:12]}-*/transcript.json"))):
        assert time.monotonic() < deadline, service["log"].read_text()[-3000:]
        time.sleep(1)
    told = json.loads(found[0].read_text(encoding="utf-8"))
    assert told["sidecar"]["content"] == {"language": "en", "place": "Almaty"} and told["language"] == "en"


def _clip_audio(clips, tmp_path, which: str = "en") -> Path:
    """A clip's audio (a new file, so a video made from it has a hash of its own)."""
    out = tmp_path / f"clip-{which}.wav"
    mf.ffmpeg("-i", str(clips[which]), "-vn", "-ac", "1", "-ar", "16000", str(out))
    return out


def test_a_uyghur_video_in_the_uyghur_folder_takes_the_uyghur_route(service, clips, tiny_whisper, tmp_path):
    """A tiny Uyghur model imported into serve's store while it runs; a file in inbox/ug/ is decoded
    with it over the uz token, never detected (Whisper cannot)."""
    store = service["archive"].parent / "models"
    subprocess.run([sys.executable, "-m", "pipeline.cli.main", "models", "import", str(tiny_whisper), "--language",
                    "ug", "--whisper-token", "uz", "--name", "ug-tiny"], check=True, capture_output=True,
                   env={**os.environ, "TESTIMONY_MODELS": str(store)})
    video = mf.video_from_audio(_clip_audio(clips, tmp_path, "ug"), tmp_path / "uyghur stated.mp4", lead_silence=0.9)
    shutil.copy(video, service["inbox"] / "ug" / video.name)
    assert _wait_for(service, {video.name})[video.name]["outcome"] == "processed"
    bundle = next(service["archive"].glob(f"{_sha(video)[:12]}-*"))
    data = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    assert data["language"] == "ug" and data["detected_language"] is None
    assert data["models"]["asr"]["name"] == "ug-tiny" and data["models"]["asr"]["whisper_token"] == "uz"


def test_without_credentials_the_prefect_api_reveals_nothing(service, clips):
    api = service["api"]
    deployment = httpx.get(f"{api}/deployments/name/process-inbox-file/inbox", timeout=10, auth=API_AUTH).json()
    for method, path, body in (("POST", "/flow_runs/filter", {"limit": 5}), ("POST", "/artifacts/filter", {}),
                               ("GET", f"/deployments/{deployment['id']}", None), ("POST", "/logs/filter", {}),
                               ("POST", f"/deployments/{deployment['id']}/create_flow_run",
                                {"parameters": {"video": "/etc/passwd"}})):
        for auth in (None, ("tester", "wrong")):
            response = httpx.request(method, api + path, json=body, auth=auth, timeout=10,
                                     headers={"Origin": "http://evil.example"})
            assert response.status_code == 401, (path, response.text)
            assert "mp4" not in response.text and "inbox" not in response.text
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200, "only the health check answers anyone"
    # A page on another origin never gets to send the request a run needs (JSON with credentials).
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    path = f"{api}/deployments/{deployment['id']}/create_flow_run"
    evil = httpx.options(path, headers={**preflight, "Origin": "http://evil.example"}, timeout=10)
    assert evil.headers.get("access-control-allow-origin") not in ("*", "http://evil.example")
    own = api.removesuffix("/api")
    assert httpx.options(path, headers={**preflight, "Origin": own}, timeout=10).headers.get(
        "access-control-allow-origin") == own, "the UI's own page still may"
    assert "tester-secret" not in service["log"].read_text(), "the password never reaches the log"


def test_the_prefect_ui_refuses_a_reviewers_account_and_the_workspace_takes_it(service):
    """Prefect's basic auth is the service's credential (TESTIMONY_AUTH here, known to the archivist, who is
    also the first admin); a reviewer's own name and password open the workspace and nothing of Prefect."""
    added = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "users", "--out", str(service["archive"]),
                            "add", "aigerim", "--role", "reviewer", "--languages", "kk", "--password-stdin"],
                           input="aigerim's own password\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    reviewer = ("aigerim", "aigerim's own password")
    assert httpx.post(f"{service['api']}/flow_runs/filter", json={}, auth=reviewer, timeout=10).status_code == 401
    assert httpx.post(f"{service['api']}/flow_runs/filter", json={}, auth=API_AUTH, timeout=10).status_code == 200
    assert httpx.get(f"{service['review']}/api/me", auth=reviewer, timeout=10).json()["role"] == "reviewer"
    assert httpx.get(f"{service['review']}/api/me", auth=API_AUTH, timeout=10).json()["role"] == "admin"


def test_people_sign_in_to_serves_workspace_in_chromium_and_see_their_part(browser, service):
    """The workspace `serve` runs: a Uyghur reviewer signs in on its page and lists Uyghur bundles only;
    a reader, with nothing approved yet, lists none; neither reaches the Prefect API."""
    from playwright.sync_api import expect

    from .conftest import sign_in

    people = {"dilnur": ("reviewer", "ug"), "reader": ("reader", "")}
    for name, (role, languages) in people.items():
        subprocess.run([sys.executable, "-m", "pipeline.cli.main", "users", "--out", str(service["archive"]), "add",
                        name, "--role", role, "--languages", languages, "--password-stdin"],
                       input=f"{name}'s own password\n", capture_output=True, text=True, timeout=60, check=True)
    for name in people:
        page = browser.new_context().new_page()
        sign_in(page, service["review"], name, f"{name}'s own password")
        expect(page.locator("#who-name")).to_contain_text(f"{name} ({people[name][0]}")
        expect(page.locator("#page-info")).not_to_be_empty()
        languages = page.locator("#bundles tbody tr td:nth-child(2)").all_inner_texts()
        assert set(languages) <= ({"ug"} if name == "dilnur" else set()), (name, languages)
        page.context.close()
        refused = httpx.post(f"{service['api']}/flow_runs/filter", json={}, timeout=10,
                             auth=(name, f"{name}'s own password"))
        assert refused.status_code == 401


def test_serve_on_an_open_address_without_tls_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TESTIMONY_AUTH", "PREFECT_API_URL")}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "serve", "--host", "0.0.0.0", "--inbox",
                           str(tmp_path / "inbox"), "--out", str(tmp_path / "archive"), "--port", str(_free_port())],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--tls-cert" in done.stderr and "--insecure-http" in done.stderr
    assert not (tmp_path / "archive" / ".prefect").exists(), "nothing was started"
