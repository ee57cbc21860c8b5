"""The custody log survives a full disk and a crash mid-write: a whole event or none, a torn tail set aside.

Short writes are made two ways: `os.write` writing half a line and then failing with ENOSPC, as a
filling disk does; and a real tmpfs filled to the last byte (mounting needs root, as CI has).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from pipeline import jsonl
from pipeline.archive import custody
from pipeline.archive.bundle import write_bundle
from pipeline.cli.main import main
from pipeline.stages.checkpoint import Checkpoint

from .test_catalog import EN, KK, transcript
from .test_faults import _fill, mounted_tmpfs


@pytest.fixture
def published(tmp_path) -> tuple[Path, Path, str]:
    """(archive, bundle, sha256): a bundle written and logged as a run publishes it, no Whisper."""
    archive = tmp_path / "archive"
    t = transcript("Куә сөзі.mp4", "kk", KK[:2], EN[:2])
    bundle = write_bundle(archive, t)
    sha = t.source.sha256
    custody.append(archive, sha, "arrival", path="/inbox/Куә сөзі.mp4", file_name="Куә сөзі.mp4")
    custody.record_publish(archive, sha, bundle)
    return archive, bundle, sha


def _half_then_enospc(monkeypatch) -> list[int]:
    """Make the next os.write write half its bytes, and the one after fail as a full disk does."""
    real, calls = os.write, []

    def write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    return calls


def _verify(archive: Path, capsys) -> tuple[int, str]:
    code = main(["verify", "--out", str(archive)])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_short_write_leaves_no_fragment_and_the_chain_verifies(published, monkeypatch, capsys):
    archive, bundle, sha = published
    log = custody.log_path(archive, sha)
    before = log.read_bytes()
    calls = _half_then_enospc(monkeypatch)
    with pytest.raises(OSError) as caught:
        custody.append(archive, sha, "export", bundle=bundle.name, note="x" * 500)
    monkeypatch.undo()
    assert len(calls) == 2, "the half written was continued, and that failed"
    assert caught.value.errno == errno.ENOSPC and str(log) in str(caught.value)
    assert "nothing was added" in str(caught.value)
    assert log.read_bytes() == before, "no fragment of the failed event is left"

    custody.append(archive, sha, "export", bundle=bundle.name)
    assert custody.check_chain(archive, sha) == []
    assert [e["event"] for e in custody.read(archive, sha)] == ["arrival", "stage", "export"]
    code, out = _verify(archive, capsys)
    assert code == 0 and f"{bundle.name}: ok" in out, out


def test_a_torn_tail_is_set_aside_and_logged_on_the_next_append(published, capsys):
    archive, bundle, sha = published
    log = custody.log_path(archive, sha)
    whole = log.read_bytes()
    fragment = b'{"time": "2026-12-06T10:00:00.000000+00:00", "event": "exp'  # a power cut mid-write
    with open(log, "ab") as f:
        f.write(fragment)
    assert [e["event"] for e in custody.read(archive, sha)] == ["arrival", "stage"], "the fragment is no event"
    problems = custody.check_chain(archive, sha)
    assert len(problems) == 1 and "incomplete" in problems[0] and "testimony repair" in problems[0]

    custody.append(archive, sha, "export", bundle=bundle.name)
    events = custody.read(archive, sha)
    assert [e["event"] for e in events] == ["arrival", "stage", "repair", "export"]
    repair = events[2]
    kept = log.with_name(f"{sha}.torn-1")
    assert repair["repaired"] == "torn-tail" and repair["kept"] == kept.name and repair["size"] == len(fragment)
    assert repair["fragment_sha256"] == hashlib.sha256(fragment).hexdigest()
    assert kept.read_bytes() == fragment and (kept.stat().st_mode & 0o777) == 0o600
    assert log.read_bytes().startswith(whole) and log.read_bytes().endswith(b"\n")
    assert custody.check_chain(archive, sha) == []
    code, out = _verify(archive, capsys)
    assert code == 0 and f"{bundle.name}: ok" in out, out


def test_a_second_torn_tail_is_kept_beside_the_first(published):
    archive, _bundle, sha = published
    log = custody.log_path(archive, sha)
    for n, piece in enumerate((b'{"time": "a', b'{"ti'), start=1):
        with open(log, "ab") as f:
            f.write(piece)
        event = custody.repair_torn_tail(archive, sha)
        assert event is not None and event["kept"] == f"{sha}.torn-{n}"
        assert log.with_name(event["kept"]).read_bytes() == piece
    assert custody.repair_torn_tail(archive, sha) is None, "nothing torn: nothing done"
    assert custody.check_chain(archive, sha) == []


def test_a_checkpoint_short_write_adds_nothing(tmp_path, monkeypatch):
    path = tmp_path / "asr-x.jsonl"
    checkpoint = Checkpoint(path)
    checkpoint.add("plan", speech=[[1.0, 2.0]])
    before = path.read_bytes()
    _half_then_enospc(monkeypatch)
    with pytest.raises(jsonl.AppendError):
        checkpoint.add("group", index=0, segments=[{"text": "сөз " * 100}])
    monkeypatch.undo()
    assert path.read_bytes() == before
    again = Checkpoint(path)
    again.add("group", index=0, segments=[])
    assert [json.loads(line)["kind"] for line in path.read_text(encoding="utf-8").splitlines()] == ["plan", "group"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs."""
    yield from mounted_tmpfs(tmp_path, "1m")


def test_a_really_full_disk_adds_no_event_and_the_chain_goes_on(tiny_disk):
    archive, sha = tiny_disk / "archive", "ab" * 32
    custody.append(archive, sha, "arrival", path="/inbox/v.mp4")
    log = custody.log_path(archive, sha)
    before = log.read_bytes()
    filler = _fill(tiny_disk)
    with pytest.raises(OSError) as caught:  # more than the free bytes and the log's last page hold
        custody.append(archive, sha, "failure", stage="publish", error="e" * (64 << 10))
    assert caught.value.errno == errno.ENOSPC
    assert log.read_bytes() == before
    filler.unlink()
    custody.append(archive, sha, "failure", stage="publish", error="disk full")
    assert custody.check_chain(archive, sha) == []
    assert [e["event"] for e in custody.read(archive, sha)] == ["arrival", "failure"]
