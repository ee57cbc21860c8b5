"""Scale-out as documented: a Prefect server on PostgreSQL, `testimony deploy`, two workers with
`--limit 1` sharing one GPU limit, eight videos on shared storage, all processed exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from flows.server import results_dir
from pipeline.archive import catalog

from . import media_factory as mf
from . import pg_server
from .test_flow import _free_port

pytestmark = pytest.mark.slow
POOL = "testimony-test-pool"
LIMIT = "testimony-gpu-0"
WORKERS = ("worker-a", "worker-b")
VIDEOS = 8
PRIVATE = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_V2_ENABLED": "false",
           "DO_NOT_TRACK": "1"}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process and its children (flow-run subprocesses of a worker), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    try:  # children left behind by a process that already exited
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


@pytest.fixture(scope="module")
def postgres():
    bin_dir = pg_server.binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found; bin/setup installs the "
                    "`postgresql` package")
    pg = pg_server.start(bin_dir, _free_port())
    try:
        yield pg
    finally:
        pg_server.stop(pg)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """`prefect server start` on PostgreSQL, loopback only, telemetry off, its own PREFECT_HOME."""
    root = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {**os.environ, **PRIVATE, "PREFECT_HOME": str(root / "home"),
           "PREFECT_API_DATABASE_CONNECTION_URL": postgres.url}
    env.pop("PREFECT_API_URL", None)
    proc = _start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                   str(port)], env, root / "server.log")
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 150
        while not _healthy(api):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Prefect server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"api": api, "log": root / "server.log"}
    finally:
        _stop(proc)


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_whisper) -> dict[str, Path]:
    """The shared storage every machine mounts at the same path: inbox, archive, model store."""
    root = tmp_path_factory.mktemp("shared")
    (root / "models" / "whisper").mkdir(parents=True)
    model = shutil.copy(tiny_whisper, root / "models" / "whisper" / "tiny-random.pt")
    (root / "inbox").mkdir()
    return {"root": root, "inbox": root / "inbox", "archive": root / "archive", "models": root / "models",
            "model": Path(model)}


@pytest.fixture(scope="module")
def cluster(server, shared, tmp_path_factory):
    """`testimony deploy`, then two workers as two machines would run them; stopped however the test ends."""
    root = tmp_path_factory.mktemp("machines")
    base = {**os.environ, **PRIVATE, "PREFECT_API_URL": server["api"], "PREFECT_WORKER_QUERY_SECONDS": "1"}
    base.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    deploy = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", "deploy", "--pool", POOL, "--out", str(shared["archive"]),
         "--models", str(shared["models"]), "--gpu-limit", "1"],
        env={**base, "PREFECT_HOME": str(root / "admin")}, capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    workers: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        for name in WORKERS:  # both share one GPU: each transcription takes the slot of its limit
            env = {**base, "PREFECT_HOME": str(root / name), "TESTIMONY_CONCURRENCY_LIMIT": LIMIT}
            log = root / f"{name}.log"
            workers[name] = (_start([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                                     "--limit", "1", "--name", name], env, log), log)
        _wait_online(server["api"], workers)
        yield {"deploy": deploy.stdout, "workers": workers, "api": server["api"]}
    finally:
        for proc, _log in workers.values():
            _stop(proc)


def _wait_online(api: str, workers: dict, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        online = {w["name"] for w in httpx.post(f"{api}/work_pools/{POOL}/workers/filter", json={},
                                                timeout=10).json() if w["status"] == "ONLINE"}
        if online >= set(workers):
            return
        for name, (proc, log) in workers.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"workers not online in {timeout:.0f} s: {set(workers) - online}")


def _logs(cluster) -> str:
    return "\n".join(f"--- {name}\n{log.read_text()[-2500:]}" for name, (_p, log) in cluster["workers"].items())


def _wait_final(api: str, deployment_id: str, count: int, cluster, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.post(f"{api}/flow_runs/filter", json={
            "deployments": {"id": {"any_": [deployment_id]}}, "limit": 50}, timeout=10).json()
        if len(runs) >= count and all(r["state_type"] in FINAL for r in runs):
            return runs
        time.sleep(2)
    pytest.fail(f"runs not finished in {timeout:.0f} s: "
                f"{[(r['name'], r['state_type']) for r in runs]}\n{_logs(cluster)}")


def _poll(fetch, ready, timeout: float = 30):
    """Task runs and events reach the server's database a little after the runs end."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_two_workers_share_eight_videos_on_postgres(cluster, shared, media):
    videos = []
    for n in range(VIDEOS):  # distinct content; half speech (random weights decode slowly), half silence
        target = shared["inbox"] / f"witness-{n}.mp4"
        videos.append(mf.video_from_audio(media / "kk.wav", target, lead_silence=0.3 + 0.2 * n) if n % 2
                      else mf.silence_video(target, 1.0 + 0.2 * n))
    api = cluster["api"]
    print(cluster["deploy"])
    assert f"prefect worker start --pool {POOL} --limit 1" in cluster["deploy"]
    limit = httpx.get(f"{api}/v2/concurrency_limits/{LIMIT}", timeout=10).json()
    assert limit["limit"] == 1, limit

    deployment = httpx.get(f"{api}/deployments/name/process-video/process-video", timeout=10).json()
    assert deployment["work_pool_name"] == POOL
    assert deployment["parameters"] == {"out": str(shared["archive"].resolve())}
    began = time.monotonic()
    for video in videos:  # as the UI form or `prefect deployment run` would
        response = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {
            "video": str(video), "asr_model": str(shared["model"]), "language": "kk",
            "word_timestamps": False, "temperature_fallback": False, "translate_to_english": False}},
            timeout=10)
        assert response.status_code == 201, response.text
    runs = _wait_final(api, deployment["id"], VIDEOS, cluster)
    print(f"{VIDEOS} runs on 2 workers in {time.monotonic() - began:.0f} s")

    assert [r["state_type"] for r in runs] == ["COMPLETED"] * VIDEOS, _logs(cluster)
    assert sorted(r["parameters"]["video"] for r in runs) == sorted(map(str, videos)), "one run per video"
    assert all(r["run_count"] == 1 for r in runs), "none crashed and was run again"
    every_run = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, timeout=10).json()
    assert len(every_run) == VIDEOS

    archive = shared["archive"]
    for video in videos:
        sha = _sha(video)
        bundles = [p for p in archive.iterdir() if p.name.startswith(sha[:12])]
        assert len(bundles) == 1, f"{video.name}: {bundles}"
        transcript = json.loads((bundles[0] / "transcript.json").read_text(encoding="utf-8"))
        assert transcript["source"]["sha256"] == sha
        manifest = json.loads((bundles[0] / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["source_sha256"] == sha
        assert {name: _sha(bundles[0] / name) for name in manifest["files"]} == manifest["files"]
    assert {v.sha256 for v in catalog.list_videos(archive)} == {_sha(v) for v in videos}
    assert any(results_dir(archive).iterdir()), "cached stage results on the shared storage"

    run_ids = {r["id"] for r in runs}
    events = _poll(lambda: httpx.post(f"{api}/events/filter", json={"filter": {
        "event": {"name": ["prefect.worker.submitted-flow-run"]}}, "limit": 50}, timeout=10).json()["events"],
        lambda found: len(found) >= VIDEOS)
    taken_by = {related["prefect.resource.id"].removeprefix("prefect.flow-run."): event["resource"][
        "prefect.resource.name"] for event in events for related in event["related"]
        if related["prefect.resource.role"] == "flow-run"}
    assert set(taken_by) == run_ids
    assert set(taken_by.values()) == set(WORKERS), f"both workers took runs: {taken_by}"

    # One GPU limit shared by both workers: no two transcriptions ever ran at the same time.
    transcribes = _poll(lambda: httpx.post(f"{api}/task_runs/filter", json={
        "flow_runs": {"id": {"any_": sorted(run_ids)}}, "task_runs": {"name": {"like_": "transcribe"}},
        "limit": 50}, timeout=10).json(),
        lambda found: sum(t["state_type"] == "COMPLETED" and bool(t["end_time"]) for t in found) >= VIDEOS)
    spans = sorted((datetime.fromisoformat(t["start_time"]), datetime.fromisoformat(t["end_time"]))
                   for t in transcribes if t["state_type"] == "COMPLETED")
    assert len(spans) == VIDEOS, transcribes
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans
    limit = httpx.get(f"{api}/v2/concurrency_limits/{LIMIT}", timeout=10).json()
    assert limit["active_slots"] == 0, "every slot was given back"
    acquired = _poll(lambda: httpx.post(f"{api}/events/filter", json={"filter": {
        "event": {"name": ["prefect.concurrency-limit.acquired"]},
        "resource": {"id": [f"prefect.concurrency-limit.{limit['id']}"]}}, "limit": 50}, timeout=10).json()[
        "events"], lambda found: len(found) >= VIDEOS)
    assert len(acquired) == VIDEOS, "each transcription took the GPU's slot"
    print("transcriptions (s):", [round((end - start).total_seconds(), 1) for start, end in spans],
          "gaps (s):", [round((b[0] - a[1]).total_seconds(), 1) for a, b in zip(spans, spans[1:])])


def test_a_limit_the_server_lacks_fails_the_run_and_says_how(cluster, shared, tmp_path):
    video = mf.silence_video(shared["inbox"] / "unguarded.mp4", 1.3)
    api = cluster["api"]
    deployment = httpx.get(f"{api}/deployments/name/process-video/process-video", timeout=10).json()
    run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={
        "parameters": {"video": str(video), "asr_model": str(shared["model"]), "language": "kk"},
        "job_variables": {"env": {"TESTIMONY_CONCURRENCY_LIMIT": "testimony-gpu-7"}}}, timeout=10).json()
    final = _poll(lambda: httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json(),
                  lambda r: r["state_type"] in FINAL, timeout=180)
    assert final["state_type"] == "FAILED", _logs(cluster)
    assert "'testimony-gpu-7'" in final["state"]["message"] and "gcl create" in final["state"]["message"]
    assert not any(p.name.startswith(_sha(video)[:12]) for p in shared["archive"].iterdir())
