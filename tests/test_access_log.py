"""The access log (issue 21, "a trail of who saw what"): append-only and hash-chained like custody, whole
under concurrent writers, a hand-edited line named by `check_chain` and failing `testimony verify`, a torn
tail set aside, `testimony access-log` filters, account changes and exports logged without a password,
and `verify` reading only."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from pipeline import chain
from pipeline.archive import access, custody
from pipeline.cli.main import main

from .test_custody import published  # noqa: F401 (a fixture: a bundle written and logged, no Whisper)

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_A, BUNDLE_B = "0123456789ab", "ba9876543210"

WRITER = """
import sys
from pipeline.archive import access
for n in range(int(sys.argv[2])):
    access.record(sys.argv[1], sys.argv[3], "view", bundle="0123456789ab", n=n)
"""


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root`: its bytes and modification time (nanoseconds)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_events_are_chained_from_genesis_and_read_back(tmp_path):
    archive = tmp_path / "archive"
    first = access.record(archive, "aigerim", "sign-in")
    second = access.record(archive, "aigerim", "view", bundle=BUNDLE_A, segment=3)
    log = access.log_path(archive)
    lines = log.read_bytes().splitlines(keepends=True)
    assert first["prev"] == chain.GENESIS and second["prev"] == hashlib.sha256(lines[0]).hexdigest()
    assert (log.stat().st_mode & 0o777) == 0o600
    assert list(second) == ["time", "who", "action", "bundle", "detail", "prev"] and second["detail"] == {"segment": 3}
    assert datetime.fromisoformat(second["time"]).tzinfo == timezone.utc and "." in second["time"]
    assert access.entries(archive) == [first, second]
    assert access.check_chain(archive) == []


def test_bad_events_are_refused_and_nothing_is_written(tmp_path):
    archive = tmp_path / "archive"
    with pytest.raises(ValueError, match="unknown access action 'peek'"):
        access.record(archive, "aigerim", "peek")
    with pytest.raises(ValueError, match="not a bundle id"):
        access.record(archive, "aigerim", "view", bundle="../etc")
    with pytest.raises(ValueError, match="never holds a password"):
        access.record(archive, "aigerim", "password", new_password="hunter2hunter2")
    with pytest.raises(ValueError, match="who did it"):
        access.record(archive, " ", "view")
    assert not access.log_path(archive).exists()


def test_threads_and_two_processes_writing_at_once_keep_one_whole_chain(tmp_path):
    archive = tmp_path / "archive"
    access.record(archive, "admin", "sign-in")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(archive), "40", f"proc{n}"], cwd=ROOT)
             for n in range(2)]
    threads = [threading.Thread(target=lambda n=n: [access.record(archive, f"thread{n}", "play", bundle=BUNDLE_B, k=k)
                                                    for k in range(25)]) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    events = access.entries(archive)
    assert len(events) == 1 + 2 * 40 + 4 * 25
    assert access.check_chain(archive) == []
    for n in range(2):
        assert [e["detail"]["n"] for e in access.entries(archive, who=f"proc{n}")] == list(range(40))
    assert len(access.entries(archive, bundle=BUNDLE_B)) == 100


def test_a_hand_edited_line_is_named_and_fails_verify_which_writes_nothing(published, capsys):  # noqa: F811
    archive, bundle, _sha = published
    for who in ("aigerim", "reader1", "admin"):
        access.record(archive, who, "view", bundle=bundle.name[:12])
    intact = _snapshot(archive)
    code, out, err = _cli(capsys, "verify", "--out", str(archive))
    assert code == 0 and f"{bundle.name}: ok" in out, out + err
    assert _snapshot(archive) == intact, "verify changed nothing"

    log = access.log_path(archive)
    log.write_bytes(log.read_bytes().replace(b'"reader1"', b'"nobody1"'))  # who saw it, hidden by hand
    problems = access.check_chain(archive)
    assert problems == ["access.jsonl line 3: prev does not match line 2's hash: an earlier line was changed, "
                        "removed or reordered"]
    before = _snapshot(archive)
    code, out, err = _cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and "access.jsonl line 3" in out, out + err
    assert _snapshot(archive) == before, "verify changed nothing, not even on a broken log"


def test_a_torn_tail_is_set_aside_and_logged_on_the_next_record(tmp_path, capsys):
    archive = tmp_path / "archive"
    access.record(archive, "aigerim", "sign-in")
    log = access.log_path(archive)
    whole = log.read_bytes()
    fragment = b'{"time": "2026-12-06T10:00:00.000000+00:00", "who": "aig'  # a power cut mid-write
    with open(log, "ab") as f:
        f.write(fragment)
    assert [e["action"] for e in access.entries(archive)] == ["sign-in"], "the fragment is no event"
    problems = access.check_chain(archive)
    assert len(problems) == 1 and "incomplete" in problems[0] and "testimony repair" in problems[0]
    code, out, _ = _cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and "incomplete" in out
    assert log.read_bytes() == whole + fragment, "verify reports the torn line and leaves it"

    access.record(archive, "aigerim", "view", bundle=BUNDLE_A)
    events = access.entries(archive)
    assert [e["action"] for e in events] == ["sign-in", "repair", "view"]
    kept = archive / "access.torn-1"
    assert events[1]["who"] == access.local_user()
    assert events[1]["detail"]["kept"] == kept.name and events[1]["detail"]["size"] == len(fragment)
    assert events[1]["detail"]["fragment_sha256"] == hashlib.sha256(fragment).hexdigest()
    assert kept.read_bytes() == fragment and (kept.stat().st_mode & 0o777) == 0o600
    assert log.read_bytes().startswith(whole) and access.check_chain(archive) == []


def test_repair_sets_a_torn_access_line_aside(tmp_path, capsys):
    archive = tmp_path / "archive"
    access.record(archive, "aigerim", "sign-in")
    with open(access.log_path(archive), "ab") as f:
        f.write(b'{"ti')
    code, out, err = _cli(capsys, "repair", "--out", str(archive))
    assert code == 0 and "access log line a crash cut off (4 bytes) set aside in access.torn-1" in out, out + err
    assert access.check_chain(archive) == [] and (archive / "access.torn-1").read_bytes() == b'{"ti'
    assert access.repair_torn_tail(archive) is None, "nothing torn: nothing done"


def _at(monkeypatch, when: str) -> None:
    monkeypatch.setattr(chain, "now", lambda: when)


def test_access_log_filters_by_who_bundle_and_day(tmp_path, capsys, monkeypatch):
    archive = tmp_path / "archive"
    _at(monkeypatch, "2026-03-04T23:59:59.999999+00:00")
    access.record(archive, "reader1", "view", bundle=BUNDLE_A)
    _at(monkeypatch, "2026-03-05T00:00:00.000000+00:00")
    access.record(archive, "reader1", "search", query="лагерь\tжүр")
    _at(monkeypatch, "2026-03-06T08:30:00.000000+00:00")
    access.record(archive, "admin", "export", bundle=BUNDLE_B, output="/tmp/x.zip")
    monkeypatch.undo()

    code, out, err = _cli(capsys, "access-log", "--out", str(archive))
    assert code == 0 and err == "3 access event(s)\n"
    assert out.splitlines() == ["2026-03-04T23:59:59.999999+00:00\treader1\tview\t0123456789ab\t-",
                                "2026-03-05T00:00:00.000000+00:00\treader1\tsearch\t-\tquery=лагерь жүр",
                                "2026-03-06T08:30:00.000000+00:00\tadmin\texport\tba9876543210\toutput=/tmp/x.zip"]
    _, out, _ = _cli(capsys, "access-log", "--out", str(archive), "--who", "reader1")
    assert [line.split("\t")[2] for line in out.splitlines()] == ["view", "search"]
    _, out, _ = _cli(capsys, "access-log", "--out", str(archive), "--bundle", BUNDLE_B + "-some-name")
    assert [line.split("\t")[1] for line in out.splitlines()] == ["admin"]
    _, out, _ = _cli(capsys, "access-log", "--out", str(archive), "--since", "2026-03-05", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in events] == ["search", "export"], "the day itself is included, from midnight UTC"
    assert events == access.entries(archive, since=date(2026, 3, 5))
    assert events[0]["detail"] == {"query": "лагерь\tжүр"}

    code, out, err = _cli(capsys, "access-log", "--out", str(archive), "--who", "nobody")
    assert (code, out, err) == (0, "", "0 access event(s)\n")
    with pytest.raises(SystemExit) as bad:
        main(["access-log", "--out", str(archive), "--since", "5 March"])
    assert bad.value.code == 2 and "YYYY-MM-DD" in capsys.readouterr().err
    code, _, err = _cli(capsys, "access-log", "--out", str(tmp_path / "none"))
    assert code == 2 and "no archive at" in err


def test_account_changes_are_logged_without_the_password(tmp_path, capsys, monkeypatch):
    archive = tmp_path / "archive"
    code, password, err = _cli(capsys, "users", "--out", str(archive), "add", "aigerim", "--role", "reviewer",
                               "--languages", "kk")
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert _cli(capsys, "users", "--out", str(archive), "reset", "aigerim", "--password-stdin")[0] == 0
    assert _cli(capsys, "users", "--out", str(archive), "disable", "aigerim")[0] == 0

    events = access.entries(archive, who=access.local_user())
    assert [(e["action"], e["detail"]["account"], e["detail"]["change"], e["detail"]["role"]) for e in events] == [
        ("account", "aigerim", "add", "reviewer"), ("account", "aigerim", "reset", "reviewer"),
        ("account", "aigerim", "disable", "reviewer")]
    logged = access.log_path(archive).read_bytes()
    assert password.strip().encode() not in logged and b"correct horse battery" not in logged
    assert b"password" not in logged.lower()
    assert access.check_chain(archive) == []


def test_an_export_is_logged_with_who_and_where(published, tmp_path, capsys):  # noqa: F811
    archive, bundle, _sha = published
    output = tmp_path / "evidence.zip"
    code, out, err = _cli(capsys, "export", bundle.name, "-o", str(output), "--out", str(archive))
    assert code == 0 and output.is_file(), err
    code, out, _ = _cli(capsys, "access-log", "--out", str(archive), "--bundle", bundle.name[:12], "--json")
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["who"] == access.local_user() and event["action"] == "export"
    assert event["detail"]["output"] == str(output.resolve()) and event["detail"]["with_original"] is False


def _head(err: str, option: str) -> str:
    """The head verify printed for keeping elsewhere."""
    return err.split(f"keep elsewhere: {option} ", 1)[1].split()[0]


def test_a_head_kept_elsewhere_shows_the_last_lines_edited_or_removed(published, capsys):  # noqa: F811
    """The chain alone cannot show its last line removed or rewritten (no later line vouches for it);
    a head printed by an earlier verify and kept elsewhere can, for the access log and a custody log."""
    archive, bundle, sha = published
    for who in ("aigerim", "reader1"):
        access.record(archive, who, "view", bundle=bundle.name[:12])
    code, _out, err = _cli(capsys, "verify", "--out", str(archive))
    kept = _head(err, "--access-head")
    assert code == 0 and kept.startswith("2:"), "verify reads only: two views, two lines"
    code, _out, err = _cli(capsys, "verify", bundle.name[:12], "--out", str(archive))
    custody_kept = _head(err, "--custody-head")
    access.record(archive, "admin", "view", bundle=bundle.name[:12])  # the log goes on: still holds
    assert _cli(capsys, "verify", "--out", str(archive), "--access-head", kept)[0] == 0

    log = access.log_path(archive)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0])  # the last two lines removed: the chain still reads intact
    assert access.check_chain(archive) == []
    code, out, _ = _cli(capsys, "verify", "--out", str(archive), "--access-head", kept)
    assert code == 1 and "access.jsonl: has 1 whole line(s), but the head noted earlier is line 2" in out
    log.write_bytes(lines[0] + lines[1].replace(b'"reader1"', b'"nobody1"'))  # the noted last line rewritten
    assert access.check_chain(archive) == []
    code, out, err = _cli(capsys, "verify", "--out", str(archive), "--access-head", kept)
    assert code == 1 and "access.jsonl line 2: differs from the head noted earlier" in out
    assert "keep elsewhere" not in err, "no head is offered for a log that failed its check"

    custody_log = custody.log_path(archive, sha)
    assert _cli(capsys, "verify", bundle.name[:12], "--out", str(archive), "--custody-head", custody_kept)[0] == 0
    custody_log.write_bytes(b"".join(custody_log.read_bytes().splitlines(keepends=True)[:-1]))
    code, out, _ = _cli(capsys, "verify", bundle.name[:12], "--out", str(archive), "--custody-head", custody_kept)
    assert code == 1 and "custody log: has" in out and "but the head noted earlier is line" in out
    code, _out, err = _cli(capsys, "verify", "--out", str(archive), "--custody-head", custody_kept)
    assert code == 2 and "--custody-head needs the video" in err
    with pytest.raises(SystemExit):
        main(["verify", "--out", str(archive), "--access-head", "3:abc"])
    assert "give the head as verify printed it" in capsys.readouterr().err
