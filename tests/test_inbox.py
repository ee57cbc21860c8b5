"""The inbox flow takes a file into a private folder before anything reads it: a file swapped for a symbolic
link after its check is never read, and a run killed while it holds a file loses nothing and makes no
second bundle. Through the real `process-inbox-file` flow (a real Prefect server), killed or stopped
for real at its failpoints; a tiny random Whisper stands in for `base` (the files are silence)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flows import taking
from pipeline.store import registry as model_registry

from . import media_factory as mf
from .test_faults import _wait_stopped
from .test_flow import prefect_server  # noqa: F401  (the module's real Prefect server)

FLOW = ("import sys; from flows.service_flows import process_inbox_file; "
        "print(process_inbox_file(sys.argv[1], sys.argv[2], sys.argv[3]))")


@pytest.fixture
def setup(prefect_server, tiny_whisper, tmp_path):  # noqa: F811
    store = tmp_path / "models"
    (store / "whisper").mkdir(parents=True)
    model_registry.write_record(Path(shutil.copy(tiny_whisper, store / "whisper" / "base.pt")), name="base",
                                origin="tiny random test model")
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    (inbox / "en").mkdir(parents=True)  # English: no translation model needed
    env = dict(prefect_server["env"], TESTIMONY_MODELS=str(store))
    return inbox, archive, env


def _flow(video: Path, inbox: Path, archive: Path, env: dict, **more: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FLOW, str(video), str(inbox), str(archive)], env={**env, **more},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _arrivals(archive: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(archive / "catalog.sqlite")
    try:
        return list(con.execute("SELECT file_name, outcome FROM arrivals ORDER BY rowid"))
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bundles(archive: Path) -> list[Path]:
    return sorted(p.parent for p in archive.glob("*/transcript.json"))


def test_a_file_swapped_for_a_symlink_after_its_check_is_never_read(setup, tmp_path):
    inbox, archive, env = setup
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = mf.silence_video(outside / "other witness.mp4", 1.4)  # another witness's original, say
    dropped = mf.silence_video(inbox / "en" / "dropped.mp4", 1.2)
    proc = _flow(dropped, inbox, archive, env, TESTIMONY_STOP_AT="inbox:checked")
    _wait_stopped(proc)  # checked: a regular file in the inbox
    kept = tmp_path / "kept.mp4"
    os.rename(dropped, kept)
    dropped.symlink_to(secret)  # swapped by someone who can write the inbox
    proc.send_signal(signal.SIGCONT)
    code, out = _finish(proc)

    assert code != 0, out  # the flow ends Failed (the calling script raises it)
    assert "dropped.mp4 refused: it was replaced between its check and its use" in out, out
    (arrival,) = _arrivals(archive)
    assert arrival[0] == "dropped.mp4" and arrival[1].startswith("refused: it was replaced"), arrival
    set_aside = inbox / "failed" / "dropped.mp4"
    assert set_aside.is_symlink() and os.readlink(set_aside) == str(secret), "the link itself is set aside"
    assert f"file: {dropped}" in (inbox / "failed" / "dropped.mp4.reason.txt").read_text(encoding="utf-8")
    assert not (archive / "originals").exists() or not os.listdir(archive / "originals"), "nothing was kept"
    assert not (archive / "custody").exists() or not list((archive / "custody").glob(f"{_sha(secret)}*"))
    assert _bundles(archive) == []
    assert os.listdir(inbox / taking.TAKING_DIR) == [], "the private folder is left empty"


def test_a_kill_while_a_file_is_taken_loses_nothing_and_makes_one_bundle(setup):
    inbox, archive, env = setup
    dropped = mf.silence_video(inbox / "en" / "witness.mp4", 1.2)
    (inbox / "en" / "witness.mp4.json").write_text(json.dumps({"place": "Almaty"}), encoding="utf-8")
    sha = _sha(dropped)

    code, out = _finish(_flow(dropped, inbox, archive, env, TESTIMONY_KILL_AT="inbox:taken"))
    assert code == -signal.SIGKILL, out
    (held,) = (inbox / taking.TAKING_DIR).iterdir()
    assert not dropped.exists() and _sha(held / "en" / "witness.mp4") == sha, "taken, not lost"
    assert (held / "en" / "witness.mp4.json").is_file(), "the sidecar went with it"
    assert taking.recover(inbox) == [dropped], "the next start puts it back where it was dropped"
    assert _sha(dropped) == sha and (inbox / "en" / "witness.mp4.json").is_file()
    assert os.listdir(inbox / taking.TAKING_DIR) == []

    # Killed again, this time after its bundle was published and before it left for done/.
    code, out = _finish(_flow(dropped, inbox, archive, env, TESTIMONY_KILL_AT="publish:renamed"))
    assert code == -signal.SIGKILL, out
    assert not dropped.exists() and len(_bundles(archive)) == 1
    assert taking.recover(inbox) == [dropped]
    code, out = _finish(_flow(dropped, inbox, archive, env))
    assert code == 0, out
    assert [outcome for _name, outcome in _arrivals(archive)] == [f"already processed: {_bundles(archive)[0].name}"]
    assert len(_bundles(archive)) == 1, "never processed twice"
    assert _sha(inbox / "done" / "witness.mp4") == sha and (inbox / "done" / "witness.mp4.json").is_file()
    assert not dropped.exists() and os.listdir(inbox / taking.TAKING_DIR) == []


def test_a_folder_a_live_run_holds_is_not_put_back(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "kk").mkdir(parents=True)
    (inbox / "kk" / "held.mp4").write_bytes(b"x" * 10)
    (inbox / "loose.mp4").write_bytes(b"y" * 10)
    held = taking.take(inbox / "kk" / "held.mp4", inbox)
    loose = taking.take(inbox / "loose.mp4", inbox)
    os.close(loose.lock)  # as a killed run leaves it: unlocked
    (inbox / "loose.mp4").write_bytes(b"a new file of the same name")
    assert taking.recover(inbox) == [inbox / "loose-2.mp4"], "put back beside, never over, a newer file"
    assert (inbox / "loose-2.mp4").read_bytes() == b"y" * 10 and held.path.read_bytes() == b"x" * 10
    assert held.release() == inbox / "kk" / "held.mp4"  # not archived: it goes back where it was
    assert os.listdir(inbox / taking.TAKING_DIR) == []


def test_what_is_not_a_regular_file_is_never_taken(tmp_path):
    inbox, outside = tmp_path / "inbox", tmp_path / "outside.mp4"
    inbox.mkdir()
    outside.write_bytes(b"secret")
    (inbox / "link.mp4").symlink_to(outside)
    os.mkfifo(inbox / "pipe.mp4")
    with pytest.raises(taking.NotTaken, match="it is a symbolic link; it was not followed"):
        taking.take(inbox / "link.mp4", inbox)
    with pytest.raises(Exception, match="is not a regular file"):
        taking.take(inbox / "pipe.mp4", inbox)
    assert (inbox / "link.mp4").is_symlink() and (inbox / "pipe.mp4").exists(), "left where they were"
    os.mkdir(inbox / taking.TAKING_DIR)
    os.chmod(inbox / taking.TAKING_DIR, 0o777)  # open to others: whoever can write it could swap what is inside
    (inbox / "plain.mp4").write_bytes(b"x")
    with pytest.raises(Exception, match="is not this user's private folder"):
        taking.take(inbox / "plain.mp4", inbox)
    assert (inbox / "plain.mp4").read_bytes() == b"x"
