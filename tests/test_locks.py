"""One lock per video around every writer: two runs of one video, a save during a run's publish, threads.

Runs are real `testimony run` processes (the tiny random Whisper keeps them quick) held at a named
failpoint with SIGSTOP (`pipeline/failpoints.py`). That the other writer is waiting is read from the
kernel (`/proc/locks` lists a process blocked on a flock), never guessed from a delay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import config, failpoints
from pipeline.archive import locks
from pipeline.archive.bundle import MANIFEST, TRANSCRIPT, find_bundle, tidy_after_kill, write_bundle
from pipeline.archive.locks import bundle_lock, work_lock
from pipeline.hashing import file_sha256
from pipeline.review import revisions
from pipeline.review.revisions import ReviewError
from pipeline.review.save import save_revision
from pipeline.run.cleanup import clean
from pipeline.transcript import Segment, Source, Transcript

from . import media_factory as mf
from .test_pipeline import TINY_FLAGS


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", *args], env=env or dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _done(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _stopped_at(point: str, *args: str) -> subprocess.Popen:
    """A `testimony` process that stops itself (SIGSTOP) at `point`, once it is there."""
    proc = _cli(*args, env=dict(os.environ, TESTIMONY_STOP_AT=point))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run never reached {point}")


def _waiting_on(pid: int, lock: Path) -> bool:
    """Whether the kernel lists process `pid` as blocked on the flock of `lock` (`/proc/locks`: `->`)."""
    if not lock.exists():
        return False
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK":
            if int(fields[5]) == pid and int(fields[6].rsplit(":", 1)[1]) == inode:
                return True
    return False


def _wait_until_waiting(pid: int, lock: Path, still_running) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if _waiting_on(pid, lock):
            return
        assert still_running(), "the second writer went on instead of waiting for the video's lock"
        time.sleep(0.05)
    pytest.fail(f"process {pid} never waited on {lock.name}")


def _leftovers(archive: Path) -> list[str]:
    return sorted(p.name for p in archive.iterdir() if ".partial" in p.name or ".old-" in p.name)


def _bundles(archive: Path) -> list[Path]:
    return [p for p in archive.iterdir() if not p.name.startswith(".") and (p / TRANSCRIPT).is_file()]


@pytest.fixture
def run_args(tiny_whisper) -> list[str]:
    return ["--language", "kk", "--no-translate", "--asr-model", str(tiny_whisper), *TINY_FLAGS]


@pytest.fixture
def video(media, tmp_path) -> Path:
    return mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=0.5)


def test_two_runs_of_one_video_at_once(video, run_args, tmp_path):
    """The second run waits for the first (held after ffmpeg wrote the WAV), then reuses its bundle:
    one bundle, nothing left in `.work/`, and verify passes."""
    archive = tmp_path / "archive"
    first = _stopped_at("extract:written", "run", str(video), "--out", str(archive), *run_args)
    second = _cli("run", str(video), "--out", str(archive), *run_args)
    lock = locks.lock_path(archive, file_sha256(video), locks.WORK)
    _wait_until_waiting(second.pid, lock, lambda: second.poll() is None)
    first.send_signal(signal.SIGCONT)
    (code1, out1), (code2, out2) = _done(first), _done(second)

    assert code1 == 0 and out1.strip().endswith("\tdone"), out1
    assert code2 == 0 and out2.strip().endswith("\treused"), out2
    assert len(_bundles(archive)) == 1 and _leftovers(archive) == []
    assert not (archive / ".work").exists(), "the work folder went once the bundle was out"
    code, out = _done(_cli("verify", "--out", str(archive)))
    assert code == 0, out


def _edited(bundle: Path, text: str) -> tuple[str, list[dict]]:
    """The newest revision's hash and its segments with the first one's text changed."""
    newest = revisions.newest(bundle)
    segments = [dict(s) for s in newest.segments]
    segments[0]["text"] = text
    return newest.sha256, segments


def _save_in_thread(archive: Path, sha256: str, base: str, segments: list[dict]) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def save() -> None:
        try:
            outcome["saved"] = save_revision(archive, sha256, base=base, author="Aigul", segments=segments)
        except ReviewError as exc:
            outcome["refused"] = exc

    thread = threading.Thread(target=save, name="review-save")
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("point", ["publish:staged", "extract:written"])
def test_a_save_during_a_run_is_never_lost(point, video, run_args, tmp_path):
    """A forced rerun held inside its publish (after its "not reviewed" check) or before it; a reviewer
    saves meanwhile. Whatever the order, a save that reported success is in the final bundle: held in
    the publish, the save waits and is then told its base is gone; saved first, the run refuses."""
    archive = tmp_path / "archive"
    assert _done(_cli("run", str(video), "--out", str(archive), *run_args))[0] == 0
    sha256 = file_sha256(video)
    base, segments = _edited(find_bundle(archive, sha256), "a reviewer's correction")
    run = _stopped_at(point, "run", str(video), "--out", str(archive), *run_args, "--force")
    save, outcome = _save_in_thread(archive, sha256, base, segments)
    if point == "publish:staged":  # the run holds the bundle lock: the save must wait for it
        _wait_until_waiting(os.getpid(), locks.lock_path(archive, sha256), save.is_alive)
    else:
        save.join(timeout=300)
    run.send_signal(signal.SIGCONT)
    code, out = _done(run)
    save.join(timeout=300)

    newest = revisions.newest(find_bundle(archive, sha256))
    if "saved" in outcome:
        assert newest.segments[0]["text"] == "a reviewer's correction", "a save that succeeded was lost"
    else:  # it waited for the publish, after which the revision it was edited from is gone: said so
        assert "reload the transcript" in str(outcome["refused"]), outcome
    assert code == 0 or ("reviewed by a person" in out and "saved" in outcome), out
    if point == "extract:written":  # saved before the publish: the run refuses to replace it
        assert "saved" in outcome and code == 1, out
    assert _leftovers(archive) == []
    code, out = _done(_cli("verify", "--out", str(archive)))
    assert code == 0, out


def _transcript(sha256: str, text: str = "Менің әкем") -> Transcript:
    return Transcript(Source("witness.mp4", sha256, 1000, 9.0, {"index": 1}), "kk", "kk", 0.9,
                      {"asr": {"name": "base"}, "options_key": "k"}, [Segment(0, 0.5, 2.4, text)],
                      created="2026-12-01T00:00:00+00:00")


class _Hold:
    """Holds the thread named `who` at failpoint `point` until `go` is set (threads cannot SIGSTOP)."""

    def __init__(self, monkeypatch, point: str, who: str) -> None:
        self.there, self.go = threading.Event(), threading.Event()
        real = failpoints.reached

        def reached(name: str, count: int = 1) -> None:
            if name == point and threading.current_thread().name == who:
                self.there.set()
                assert self.go.wait(300)
            real(name, count)

        monkeypatch.setattr(failpoints, "reached", reached)


def _in_thread(name: str, fn, *args) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            result["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, result


def _manifest_ok(bundle: Path) -> bool:
    manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    return all(file_sha256(bundle / name) == digest for name, digest in manifest["files"].items())


def test_a_sweep_in_another_thread_leaves_a_live_staging_folder(monkeypatch, tmp_path):
    """`serve` tidies the archive (at start, verify, clean) in one thread while a flow publishes in
    another: the staging folder of the live publish is not a killed one's, whatever its process id."""
    sha256 = "ab" * 32
    hold = _Hold(monkeypatch, "publish:staged", "publisher")
    publisher, published = _in_thread("publisher", write_bundle, tmp_path, _transcript(sha256))
    assert hold.there.wait(300)
    (staging,) = tmp_path.glob(".*.partial-*")
    entered = threading.Event()
    sweeper, swept = _in_thread("sweeper", lambda: (entered.set(), tidy_after_kill(tmp_path)))
    assert entered.wait(300)
    sweeper.join(timeout=1)  # the sweep is held by the publish's lock, or (the fault) has removed it
    assert staging.is_dir(), "another thread's sweep removed a live publish's staging folder"
    hold.go.set()
    publisher.join(300), sweeper.join(300)
    assert "error" not in published and "error" not in swept, (published, swept)
    assert _manifest_ok(published["value"]) and _leftovers(tmp_path) == []


def test_two_threads_publishing_one_video_wait_for_each_other(monkeypatch, tmp_path):
    """One thread held after retiring the old bundle (the only copy is hidden); another publishes the
    same video: it waits, instead of taking the retired folder for a killed publish's and putting it back."""
    sha256 = "cd" * 32
    write_bundle(tmp_path, _transcript(sha256, "first"))
    hold = _Hold(monkeypatch, "publish:retired", "first")
    first, one = _in_thread("first", write_bundle, tmp_path, _transcript(sha256, "second"))
    assert hold.there.wait(300)
    second, two = _in_thread("second", write_bundle, tmp_path, _transcript(sha256, "third"))
    second.join(timeout=1)  # it waits for the first, or (the fault) tidies the first's folders away
    hold.go.set()
    first.join(300), second.join(300)
    assert "error" not in one and "error" not in two, (one, two)
    (bundle,) = _bundles(tmp_path)
    assert _manifest_ok(bundle) and _leftovers(tmp_path) == []
    assert Transcript.load(bundle / TRANSCRIPT).segments[0].text == "third", "the later publish is the bundle"


@pytest.mark.parametrize("command", ["export", "verify"])
def test_export_and_verify_wait_for_a_writer(command, tmp_path):
    """While a writer holds a video's bundle lock (a save, a publish), `export` and `verify` (shared)
    wait for it instead of reading a bundle half replaced."""
    from pipeline.run import process

    sha256 = "67" * 32
    bundle = process.publish_transcript(tmp_path, _transcript(sha256))
    args = [command, bundle.name[:12], "--out", str(tmp_path)]
    args += ["-o", str(tmp_path / "out.zip")] if command == "export" else []
    with bundle_lock(tmp_path, sha256):
        proc = _cli(*args)
        _wait_until_waiting(proc.pid, locks.lock_path(tmp_path, sha256), lambda: proc.poll() is None)
    code, out = _done(proc)
    assert code == 0, out
    assert command != "export" or (tmp_path / "out.zip").is_file()


def test_the_lock_holds_across_threads_and_processes_and_reenters(tmp_path):
    """Two descriptors of one file conflict within a process, a thread waits for another, a nested take
    in one thread re-enters; a shared take creates no file (verify writes nothing); the kernel drops
    a killed holder's lock."""
    sha256 = "ef" * 32
    with bundle_lock(tmp_path, sha256):
        with bundle_lock(tmp_path, sha256), bundle_lock(tmp_path, sha256, shared=True):
            pass  # re-entered, not deadlocked
        other = bundle_lock(tmp_path, sha256)
        thread, result = _in_thread("other", other.acquire, False)
        thread.join(300)
        assert result["value"] is False
    assert bundle_lock(tmp_path, sha256).acquire(blocking=False), "released on leaving the block"
    with bundle_lock(tmp_path, "01" * 32, shared=True):
        assert not locks.lock_path(tmp_path, "01" * 32).exists()

    lock = locks.lock_path(tmp_path, "23" * 32)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from pipeline.archive.locks import bundle_lock\n"
                               f"bundle_lock({str(tmp_path)!r}, {'23' * 32!r}).acquire()\n"
                               "print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert not bundle_lock(tmp_path, "23" * 32).acquire(blocking=False), "held by another process"
    holder.kill(), holder.wait()
    assert lock.exists() and bundle_lock(tmp_path, "23" * 32).acquire(blocking=False), "dropped with its process"


def test_clean_leaves_a_work_folder_a_run_holds(tmp_path):
    """However old its files, a work folder whose run holds the video's work lock is in use."""
    sha256 = "45" * 32
    work = config.private_dirs(tmp_path / ".work" / sha256[:12])
    (work / "audio.wav").write_bytes(b"RIFF")
    old = time.time() - 30 * 86400
    for path in (work / "audio.wav", work):
        os.utime(path, (old, old))
    held = work_lock(tmp_path, sha256)
    held.acquire()
    try:
        assert clean(tmp_path, 7) == [] and work.is_dir()
    finally:
        held.release()
    assert clean(tmp_path, 7) == [work] and not work.exists()


def test_our_own_process_is_alive():
    """A staging folder named with our own id may be another thread's, in the middle of its work."""
    assert config.pid_alive(os.getpid())
