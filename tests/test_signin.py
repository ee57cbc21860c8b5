"""Signing in to the workspace and what each role may do, through the real app (Starlette's test client,
real SQLite accounts and sessions, real bundles). The same in real Chromium against a real
`testimony serve` is tests/test_team.py."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipeline.archive import catalog
from pipeline.archive.bundle import find_bundle
from pipeline.cli.main import main
from pipeline.review import accounts, revisions, server
from pipeline.review.auth import Exposure
from pipeline.run import process

from .test_catalog import transcript
from .test_flow import _free_port

PASSWORDS = {"archivist": "archivist password", "aigerim": "aigerim password", "dilnur": "dilnur password",
             "reader": "reader password"}
ORIGIN = "http://testserver"


def _publish(archive: Path, name: str, language: str) -> str:
    t = transcript(name, language, ["бірінші сөйлем", "екінші сөйлем"], ["first sentence", "second sentence"])
    process.publish_transcript(archive, t)
    return t.source.sha256


@pytest.fixture
def team(tmp_path) -> dict:
    archive = tmp_path / "archive"
    shas = {"kk": _publish(archive, "kazakh witness.mp4", "kk"), "ug": _publish(archive, "uyghur witness.mp4", "ug")}
    catalog.sync(archive)
    roles = {"archivist": ("admin", ()), "aigerim": ("reviewer", ("kk",)), "dilnur": ("reviewer", ("ug",)),
             "reader": ("reader", ())}
    for name, (role, languages) in roles.items():
        accounts.add(archive, name, role, languages, PASSWORDS[name], must_change=False)
    app = server.build_app(archive, origin=ORIGIN)
    return {"archive": archive, "app": app, "sha": shas}


def _client(team: dict) -> TestClient:
    return TestClient(team["app"], base_url=ORIGIN, follow_redirects=False)


def _token(client: TestClient) -> str:
    html = client.get("/signin").text
    return html.split('name="testimony-token" content="')[1].split('"')[0]


def _send(client: TestClient, method: str, path: str, body: dict, **headers: str):
    return client.request(method, path, content=json.dumps(body), headers={
        "Content-Type": "application/json", "X-Testimony-Token": _token(client), "Origin": ORIGIN, **headers})


def _signed_in(team: dict, name: str) -> TestClient:
    client = _client(team)
    response = _send(client, "POST", "/api/session", {"name": name, "password": PASSWORDS[name]})
    assert response.status_code == 200, response.text
    return client


def _basic(name: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def _save(client: TestClient, sha: str, **body):
    bundle = client.get(f"/api/bundles/{sha[:12]}").json()
    segments = [{**s, "text": s["text"] + " (түзетілді)", "checked": True} for s in bundle["segments"]]
    return _send(client, "POST", f"/api/bundles/{sha[:12]}/revisions",
                 {"base": bundle["revision"], "segments": segments, **body})


def test_nobody_signed_in_is_sent_to_sign_in_and_shown_nothing(team):
    client = _client(team)
    page = client.get("/")
    assert page.status_code == 303 and page.headers["location"] == "/signin"
    for path in ("/api/bundles", f"/api/bundles/{team['sha']['kk'][:12]}", f"/media/{team['sha']['kk'][:12]}"):
        answer = client.get(path)
        assert answer.status_code == 401 and "witness" not in answer.text and "сөйлем" not in answer.text
    signin = client.get("/signin")
    assert signin.status_code == 200 and 'id="signin"' in signin.text and "witness" not in signin.text


def test_sign_in_sets_a_strict_http_only_cookie_that_sign_out_ends(team):
    client = _signed_in(team, "aigerim")
    cookie = next(v for k, v in client.cookies.items())
    set_cookie = _send(_client(team), "POST", "/api/session", {"name": "aigerim", "password": PASSWORDS["aigerim"]})
    assert "HttpOnly" in set_cookie.headers["set-cookie"] and "SameSite=Strict" in set_cookie.headers["set-cookie"]
    assert "Secure" not in set_cookie.headers["set-cookie"], "plain HTTP on 127.0.0.1: Secure would drop it"
    assert client.get("/api/me").json() == {"name": "aigerim", "role": "reviewer", "languages": ["kk"],
                                            "must_change": False}
    assert _send(client, "DELETE", "/api/session", {}).status_code == 200
    stale = _client(team)
    stale.cookies.set("testimony_session", cookie)
    assert stale.get("/api/bundles").status_code == 401, "the cookie opens nothing after sign-out"
    assert PASSWORDS["aigerim"].encode() not in b"".join(
        p.read_bytes() for p in team["archive"].rglob("*") if p.is_file()), "no password in any file"


def test_bad_passwords_are_refused_then_slowed(team):
    client = _client(team)
    answers = [_send(client, "POST", "/api/session", {"name": "aigerim", "password": "guess"})
               for _ in range(accounts.FREE_TRIES + 1)]
    statuses = [a.status_code for a in answers]
    assert statuses == [401] * (accounts.FREE_TRIES - 1) + [429, 429], "free tries, then each answer says wait"
    assert int(answers[-1].headers["retry-after"]) >= 1
    right = _send(client, "POST", "/api/session", {"name": "aigerim", "password": PASSWORDS["aigerim"]})
    assert right.status_code == 429, "even the right password waits until the wait is over"


def test_a_cross_site_request_changes_nothing(team):
    client = _signed_in(team, "archivist")
    sha = team["sha"]["kk"]
    before = (find_bundle(team["archive"], sha) / "transcript.json").read_bytes()
    form = client.post(f"/api/bundles/{sha[:12]}/revisions", content="base=x",
                       headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
    plain = client.post(f"/api/bundles/{sha[:12]}/revisions", content="{}", headers={"Content-Type": "text/plain"})
    no_token = client.post(f"/api/bundles/{sha[:12]}/revisions", content="{}",
                           headers={"Content-Type": "application/json"})
    assert (form.status_code, plain.status_code, no_token.status_code) == (403, 415, 403)
    assert (find_bundle(team["archive"], sha) / "transcript.json").read_bytes() == before


def test_pages_opened_by_another_name_of_this_server_may_send_changes(team, capsys):
    """Bound to 127.0.0.1, a page opened as localhost is ours too, and so is each --public-url (a host
    name, a TLS proxy in front); any other origin is still another site's page."""
    exposure = Exposure(public_urls=("https://testimony.example/", "http://10.0.0.5:8080"))
    origin, *also = exposure.origins(4300)
    assert origin == "http://127.0.0.1:4300"
    assert also == ["http://localhost:4300", "http://[::1]:4300", "https://testimony.example", "http://10.0.0.5:8080"]
    client = TestClient(server.build_app(team["archive"], origin=origin, also=tuple(also)), base_url=origin)
    sent = {page: _send(client, "POST", "/api/session", {"name": "reader", "password": PASSWORDS["reader"]},
                        Origin=page).status_code
            for page in ("http://localhost:4300", "https://testimony.example", "http://evil.example",
                         "https://testimony.example:8443", "http://10.0.0.5:8080")}
    assert sent == {"http://localhost:4300": 200, "https://testimony.example": 200, "http://evil.example": 403,
                    "https://testimony.example:8443": 403, "http://10.0.0.5:8080": 200}
    code = main(["review", "--out", str(team["archive"]), "--public-url", "ftp://testimony.example"])
    assert code == 2 and "--public-url ftp://testimony.example: give the address people open" in capsys.readouterr().err
    code = main(["review", "--out", str(team["archive"]), "--public-url", "https://testimony.example:99999"])
    assert code == 2 and "--public-url https://testimony.example:99999: the port is not" in capsys.readouterr().err
    assert Exposure(public_urls=("https://testimony.example",)).secure_cookies, "behind a TLS proxy: Secure"
    assert not Exposure().secure_cookies and not Exposure(public_urls=("http://10.0.0.5:8080",)).secure_cookies


def test_a_reviewer_sees_and_edits_their_languages_only(team):
    client, sha = _signed_in(team, "aigerim"), team["sha"]
    listed = client.get("/api/bundles").json()
    assert [b["language"] for b in listed["bundles"]] == ["kk"] and listed["total"] == 1
    for path in (f"/api/bundles/{sha['ug'][:12]}", f"/api/bundles/{sha['ug'][:12]}/revisions",
                 f"/media/{sha['ug'][:12]}", f"/api/bundles/{sha['ug'][:12]}/document?format=csv"):
        answer = client.get(path)
        assert answer.status_code == 403 and "uyghur" not in answer.text.lower() and "/" not in answer.json()["error"]
    ug_before = (find_bundle(team["archive"], sha["ug"]) / "transcript.json").read_bytes()
    admin = _signed_in(team, "archivist")
    ug = admin.get(f"/api/bundles/{sha['ug'][:12]}").json()
    refused = _send(client, "POST", f"/api/bundles/{sha['ug'][:12]}/revisions",
                    {"base": ug["revision"], "segments": ug["segments"]})
    assert refused.status_code == 403
    assert (find_bundle(team["archive"], sha["ug"]) / "transcript.json").read_bytes() == ug_before


def test_the_author_is_the_signed_in_account_whatever_the_body_says(team):
    client, sha = _signed_in(team, "aigerim"), team["sha"]["kk"]
    saved = _save(client, sha, author="archivist")
    assert saved.status_code == 201, saved.text
    assert revisions.newest(find_bundle(team["archive"], sha)).author == "aigerim"


def test_a_script_uses_its_own_name_and_password(team):
    client, sha = _client(team), team["sha"]["kk"]
    assert client.get("/api/bundles", headers=_basic("dilnur", PASSWORDS["dilnur"])).json()["total"] == 1
    assert client.get(f"/api/bundles/{sha[:12]}", headers=_basic("dilnur", PASSWORDS["dilnur"])).status_code == 403
    wrong = client.get("/api/bundles", headers=_basic("dilnur", "wrong"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers


def test_a_one_time_password_opens_only_the_change_form(team):
    one_time = accounts.add(team["archive"], "newcomer", "reviewer", ("kk",))
    client = _client(team)
    signed = _send(client, "POST", "/api/session", {"name": "newcomer", "password": one_time})
    assert signed.status_code == 200 and signed.json()["must_change"] is True
    assert client.get("/api/bundles").status_code == 403
    short = _send(client, "POST", "/api/password", {"password": one_time, "new": "short"})
    assert short.status_code == 400
    changed = _send(client, "POST", "/api/password", {"password": one_time, "new": "a long new password"})
    assert changed.status_code == 200 and changed.json()["must_change"] is False
    assert client.get("/api/bundles").status_code == 200, "the new session cookie works"
    assert accounts.authenticate(team["archive"], "newcomer", "a long new password").name == "newcomer"


def test_an_expired_session_is_refused(team):
    """Idle past sessions.IDLE: the cookie opens nothing (the clock is moved back in the database)."""
    import sqlite3

    from pipeline.review import sessions

    client = _signed_in(team, "reader")
    assert client.get("/api/me").status_code == 200
    with sqlite3.connect(accounts.db_path(team["archive"])) as con:
        con.execute("UPDATE sessions SET seen = seen - ?", (sessions.IDLE + 1,))
    con.close()
    assert client.get("/api/me").status_code == 401


def _approve(team: dict, language: str = "kk") -> str:
    """The bundle claimed, fully checked and saved by its reviewer, checked, then approved by the admin."""
    from pipeline.review import workflow

    sha, archive = team["sha"][language], team["archive"]
    reviewer = _signed_in(team, "aigerim")
    assert _send(reviewer, "POST", f"/api/bundles/{sha[:12]}/state", {"action": "claim"}).status_code == 200
    assert _save(reviewer, sha).status_code == 201
    workflow.check(archive, sha, accounts.get(archive, "aigerim"))
    workflow.approve(archive, sha, accounts.get(archive, "archivist"))
    return sha


def test_a_reader_reads_the_approved_text_only_never_the_drafts_behind_it(team):
    sha = _approve(team)
    reader = _signed_in(team, "reader")
    approved = reader.get(f"/api/bundles/{sha[:12]}")
    assert approved.status_code == 200 and approved.json()["number"] == 1
    draft = revisions.chain(find_bundle(team["archive"], sha))[0].sha256
    assert reader.get(f"/api/bundles/{sha[:12]}", params={"revision": draft}).status_code == 403
    assert reader.get(f"/api/bundles/{sha[:12]}/revisions").status_code == 403
    assert reader.get("/api/progress").status_code == 403, "nothing about drafts, not even their hours"
    assert [b["id"] for b in reader.get("/api/bundles").json()["bundles"]] == [sha[:12]]


def test_a_password_typed_as_the_name_never_reaches_the_access_log(team):
    from pipeline.archive import access

    client = _client(team)
    _send(client, "POST", "/api/session", {"name": "aigerim password", "password": "x"})
    _send(client, "POST", "/api/session", {"name": "aigerim", "password": "wrong one"})
    refused = [e["who"] for e in access.entries(team["archive"]) if e["action"] == "sign-in-refused"]
    assert refused == ["-", "aigerim"]
    assert b"aigerim password" not in access.log_path(team["archive"]).read_bytes()


def test_a_scripts_basic_auth_ends_when_the_password_changes(team):
    client, old = _client(team), _basic("dilnur", PASSWORDS["dilnur"])
    assert client.get("/api/me", headers=old).status_code == 200  # now remembered for a few minutes
    accounts.set_password(team["archive"], "dilnur", "a brand new password")
    assert client.get("/api/me", headers=old).status_code == 401
    accounts.disable(team["archive"], "dilnur")
    assert client.get("/api/me", headers=_basic("dilnur", "a brand new password")).status_code == 401


def test_a_slow_read_holds_up_nobody_else(team, monkeypatch):
    """A real workspace server: while one person's bundle read waits (a long disk read, a save's lock),
    another person's requests are answered; plain handlers run off the event loop."""
    reading, release, real = threading.Event(), threading.Event(), server.bundle_of
    def slow(ws, key):
        reading.set()
        release.wait(60)
        return real(ws, key)
    monkeypatch.setattr(server, "bundle_of", slow)
    port, stop = _free_port(), threading.Event()
    threading.Thread(target=server.serve_workspace, args=(team["archive"],), kwargs={"port": port, "stop": stop},
                     daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    _until_up(base)
    slow_read = threading.Thread(target=_get, args=(base, f"/api/bundles/{team['sha']['kk'][:12]}", "aigerim"))
    slow_read.start()
    try:
        assert reading.wait(30)
        assert _get(base, "/api/me", "reader") == {"name": "reader", "role": "reader", "languages": [],
                                                   "must_change": False}
    finally:
        release.set()
        slow_read.join(60)
        stop.set()


def _get(base: str, path: str, name: str) -> dict:
    request = urllib.request.Request(base + path, headers=_basic(name, PASSWORDS[name]))
    with urllib.request.urlopen(request, timeout=20) as answer:
        return json.loads(answer.read())


def _until_up(base: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/signin", timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{base} never answered")
