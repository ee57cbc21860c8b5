"""The Prefect flow against a real Prefect server on loopback (isolated PREFECT_HOME, analytics off)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.server import results_dir

from . import media_factory as mf

TINY_FLAGS = ["--no-word-timestamps", "--no-fallback"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_UI_V2_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            pytest.fail(f"Prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail("Prefect server did not become healthy in 120 s")
    yield {"api": api, "env": {**env, "PREFECT_API_URL": api}}
    server.terminate()
    server.wait(timeout=30)
    log.close()


def _testimony(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _task_states(api: str, flow_run_id: str, expected: int = 5) -> dict[str, str]:
    """Task name -> final state name; task runs reach the server as events, so wait for them."""
    deadline = time.monotonic() + 30
    while True:
        runs = httpx.post(f"{api}/task_runs/filter", json={
            "flow_runs": {"id": {"any_": [flow_run_id]}}}, timeout=10).json()
        states = {run["name"].rsplit("-", 1)[0]: run["state"]["name"] for run in runs if run["state"]}
        if (len(states) >= expected and all(s in ("Completed", "Cached", "Failed") for s in states.values())
                or time.monotonic() > deadline):
            return states
        time.sleep(0.5)


def test_cli_runs_the_flow_on_a_configured_server(prefect_server, media, tiny_whisper, tmp_path):
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    archive = tmp_path / "archive"
    args = ["run", str(video), "--out", str(archive), "--language", "kk", "--asr-model", str(tiny_whisper),
            *TINY_FLAGS]
    first = _testimony(args, prefect_server["env"])
    assert first.returncode == 0, first.stdout + first.stderr
    bundle = Path(first.stdout.splitlines()[0].split("\t")[0])
    assert (bundle / "transcript.json").is_file()

    shutil.rmtree(bundle)  # the bundle goes; the stage results cached inside the archive stay
    again = _testimony(args, prefect_server["env"])
    assert again.returncode == 0, again.stdout + again.stderr
    other_archive = [*args, "--out", str(tmp_path / "second-archive")]  # last --out wins
    other = _testimony(other_archive, prefect_server["env"])
    assert other.returncode == 0, other.stdout + other.stderr
    forced = _testimony([*args, "--force"], prefect_server["env"])
    assert forced.returncode == 0, forced.stdout + forced.stderr

    api = prefect_server["api"]
    flow_runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_ASC"},
                           timeout=10).json()
    assert [r["state"]["type"] for r in flow_runs] == ["COMPLETED"] * 4
    assert flow_runs[0]["parameters"]["video"] == str(video)
    first, second, third, fourth = (_task_states(api, run["id"]) for run in flow_runs)
    assert first["transcribe"] == "Completed"
    assert second["transcribe"] == "Cached", "same SHA-256 and options: the stage is reused"
    assert second["write-bundle"] == "Completed" and (bundle / "transcript.json").is_file()
    assert any(results_dir(archive).iterdir()), "results persist inside the archive, not in Prefect's home"
    assert third["transcribe"] == "Completed", "another archive never reads this one's results"
    assert (tmp_path / "second-archive" / bundle.name / "transcript.json").is_file()
    assert fourth["transcribe"] == "Completed", "--force recomputes instead of reading the cache"

    # This server's database is not the archive's: the UI's artifact names neither the file nor the words.
    artifact = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [
        f"transcript-{bundle.name[:12]}"]}}}, timeout=10).json()[0]
    text = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))["segments"][0]["text"]
    assert "witness" not in json.dumps(artifact) and (not text.strip() or text not in artifact["data"])
    assert f"testimony get {bundle.name[:12]}" in artifact["data"]


def test_bad_input_fails_without_retry(prefect_server, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 2048)
    result = _testimony(["run", str(bad), "--out", str(tmp_path / "archive")], prefect_server["env"])
    assert result.returncode == 1
    assert f"FAILED {bad}" in result.stdout and "not a video or audio file" in result.stdout
    api = prefect_server["api"]
    flows = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
    failed = [r for r in flows if r["state"]["type"] == "FAILED" and r["parameters"].get("video") == str(bad)]
    assert len(failed) == 1 and failed[0]["run_count"] == 1, "bad input is not retried"
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [failed[0]["id"]]}}},
                       timeout=10).json()
    assert all(r["run_count"] <= 1 for r in tasks), "no stage of it is retried"
    assert not [r for r in tasks if r["name"].startswith("extract-audio")], "probed before any stage: never extracted"
    assert bad.read_bytes() == b"\x00" * 2048


def test_the_flow_takes_the_one_path(prefect_server, media, tiny_whisper, tmp_path):
    """Through Prefect, as through `testimony run`: a private archive, no work folder left after a
    reuse, and a retranslation that custody logs, so `verify` accepts it."""
    import hashlib
    import json
    import stat

    from .tiny_models.argos import build_tiny_argos_package

    env = {**prefect_server["env"], "TESTIMONY_MODELS": os.environ["TESTIMONY_MODELS"]}
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    archive = tmp_path / "new-archive"
    args = ["run", str(video), "--out", str(archive), "--language", "kk", "--asr-model", str(tiny_whisper),
            *TINY_FLAGS]
    first = _testimony(args, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700, "the flow makes the archive private too"
    assert not (archive / ".work").exists()

    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    leftover = archive / ".work" / sha[:12]
    leftover.mkdir(parents=True)
    (leftover / "audio.wav").write_bytes(b"left by a run killed after publishing")
    again = _testimony(args, env)
    assert again.returncode == 0 and again.stdout.rstrip().endswith("reused"), again.stdout + again.stderr
    assert not (archive / ".work").exists(), "a reused bundle cleans its work folder on the flow path"

    assert _testimony(["models", "import", str(build_tiny_argos_package(tmp_path, "kk", "en"))],
                      env).returncode == 0
    script = ("import sys; from flows.service_flows import retranslate; "
              "print(retranslate(sys.argv[1], out=sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", script, sha[:12], str(archive)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    transcript = json.loads((Path(done.stdout.splitlines()[-1]) / "transcript.json").read_text())
    assert transcript["models"]["translation"]["route"] == ["kk", "en"]
    verify = _testimony(["verify", sha[:12], "--out", str(archive)], env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    from pipeline.archive import custody

    assert [e.get("name") for e in custody.read(archive, sha)].count("publish") == 2
