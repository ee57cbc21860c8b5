"""`testimony serve` killed mid-run together with its Prefect server, as a power cut would, then started
again: the interrupted run resumes from its checkpoint, the queued run and a file dropped while it was
down are processed, and every video ends with exactly one bundle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline.archive import custody
from pipeline.evaluation.devset import librivox

from . import media_factory as mf
from .test_flow import _free_port
from .test_serve import API_AUTH, AUTH_ENV, _arrivals

pytestmark = pytest.mark.slow


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serve(root: Path, inbox: Path, archive: Path, port: int, env: dict, log_name: str) -> subprocess.Popen:
    log = open(root / log_name, "w")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--inbox", str(inbox), "--out",
                             str(archive), "--port", str(port), "--settle", "1"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    began = time.monotonic()
    while "ready in" not in (root / log_name).read_text():
        if proc.poll() is not None or time.monotonic() - began > 180:
            proc.kill()
            pytest.fail(f"serve did not start:\n{(root / log_name).read_text()[-3000:]}")
        time.sleep(0.3)
    return proc


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def _server_pids(port: int) -> list[int]:
    """The Prefect server serve started on `port` (it runs in its own session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"server" in cmdline and str(port).encode() in cmdline and any(b"prefect" in part for part in cmdline):
            pids.append(int(entry.name))
    return pids


def test_restart_after_power_cut_resumes_in_flight_and_queued(tmp_path, converted_base):
    root = tmp_path
    store = root / "models"
    (store / "whisper").mkdir(parents=True)
    shutil.copy(converted_base, store / "whisper" / "base.pt")
    inbox, archive = root / "inbox", root / "archive"
    inbox.mkdir()
    clips = [wav for _, wav, _ in sorted(librivox(), key=lambda clip: clip[1])]
    # Three answers 12 s apart: three decode chunks, so a kill after the first leaves two to do.
    long = mf.interview_video(clips[:3], root / "a-interview.mp4", lead_silence=2.0, pause=12.0)
    queued = mf.video_from_audio(clips[3], root / "b-queued.mp4", lead_silence=1.0)
    late = mf.video_from_audio(clips[4], root / "c-dropped while down.mp4", lead_silence=1.0)
    shutil.copy(long, inbox / long.name)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "TESTIMONY_MODELS": str(store), "TESTIMONY_DATA": str(root / "data"),
           "PREFECT_HOME": str(root / "prefect"), **AUTH_ENV}
    env.pop("PREFECT_API_URL", None)

    # 1. serve freezes itself right after the first chunk of the interview is checkpointed.
    first = _serve(root, inbox, archive, port, {**env, "TESTIMONY_STOP_AT": "asr:group#1"}, "serve-1.log")
    deadline = time.monotonic() + 300
    while not _stopped(first.pid):
        assert first.poll() is None and time.monotonic() < deadline, (root / "serve-1.log").read_text()[-3000:]
        time.sleep(0.1)
    deployment = httpx.get(f"{api}/deployments/name/process-inbox-file/inbox", timeout=10, auth=API_AUTH).json()
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, timeout=10, auth=API_AUTH).json()
    (in_flight,) = [r for r in runs if r["state_type"] == "RUNNING" and r["deployment_id"] == deployment["id"]]
    assert in_flight["parameters"]["video"].endswith(long.name)
    # 2. A second file is queued (a run scheduled, not started), a third lands while everything is down.
    shutil.copy(queued, inbox / queued.name)
    waiting = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {
        "video": str(inbox / queued.name), "inbox": str(inbox), "out": str(archive)}}, timeout=10, auth=API_AUTH).json()
    # 3. Power cut: serve and its server die at once, with no chance to record anything.
    for pid in [first.pid, *_server_pids(port)]:
        os.kill(pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert not [p for p in archive.iterdir() if not p.name.startswith(".") and (p / "transcript.json").exists()]
    shutil.copy(late, inbox / late.name)

    # 4. Start again.
    second = _serve(root, inbox, archive, port, env, "serve-2.log")
    try:
        deadline = time.monotonic() + 600
        names = {long.name, queued.name, late.name}
        while True:
            done = {Path(a["path"]).name for a in _arrivals(archive) if a["outcome"] == "processed"}
            if names <= done:
                break
            assert time.monotonic() < deadline, (root / "serve-2.log").read_text()[-3000:]
            time.sleep(1)
        log = (root / "serve-2.log").read_text()
        assert f"resuming 1 interrupted run(s): {in_flight['name']}" in log
        for video in (long, queued, late):
            bundles = list(archive.glob(f"{_sha(video)[:12]}-*"))
            assert len(bundles) == 1 and (bundles[0] / "manifest.json").exists(), video.name
        resumed = [e for e in custody.read(archive, _sha(long)) if e["event"] == "resume"]
        assert [e.get("chunks_done") for e in resumed if e["stage"] == "transcribe"] == [1]
        transcript = json.loads(next(archive.glob(f"{_sha(long)[:12]}-*/transcript.json")).read_text())
        starts = [s["start"] for s in transcript["segments"]]
        assert min(starts) < 12 and max(starts) > 24, "segments from the first and the last answer"
        for run_id in (in_flight["id"], waiting["id"]):
            state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10, auth=API_AUTH).json()["state_type"]
            assert state == "COMPLETED", run_id
        assert not (inbox / "failed").exists() and not (archive / ".work").exists()
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(timeout=60)
        finally:
            for pid in _server_pids(port):
                os.kill(pid, signal.SIGKILL)
