"""`testimony serve` as a user meets it: startup to ready, memory, and drop-to-bundle time (not a test).

Starts `testimony serve` in a temporary data folder (its own Prefect server and SQLite database),
waits for "ready", records the resident memory of the serve process and of the Prefect server, then
copies an interview-like 1-minute video (the one bench/stage_times.py builds) into the inbox and times
until its bundle is published, and a second video to show the time once models are loaded. Results go
to stdout and bench/results-serve.md.

    .venv/bin/python bench/serve_latency.py [--seconds 60] [--port 4399]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stage_times import build_video, machine_info  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results-serve.md"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mib(pid: int) -> float:
    """The process and its children (the Prefect server runs its own worker processes)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += rss_mib(current)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return total


def server_pid(port: int) -> int | None:
    out = subprocess.run(["pgrep", "-f", f"prefect server start --host 127.0.0.1 --port {port}"],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def wait_for_bundle(archive: Path, prefix: str, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if any((p / "manifest.json").exists() for p in archive.glob(f"{prefix}-*")):
            return time.monotonic() - began
        time.sleep(0.2)
    raise TimeoutError(f"no bundle for {prefix} within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the dropped video (default: 60)")
    parser.add_argument("--port", type=int, default=4399)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()

    from pipeline.hashing import file_sha256

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    video, _ = build_video(work / "build", args.seconds)
    second, _ = build_video(work / "build2", args.seconds, voice="en", column="en")
    inbox, archive = work / "inbox", work / "archive"
    env = {**os.environ, "TESTIMONY_DATA": str(work / "data")}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    log = open(work / "serve.log", "w")
    began = time.monotonic()
    proc = subprocess.Popen([str(REPO / ".venv/bin/testimony"), "serve", "--inbox", str(inbox), "--out", str(archive),
                             "--port", str(args.port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while "ready in" not in (work / "serve.log").read_text():
            if proc.poll() is not None:
                raise RuntimeError((work / "serve.log").read_text())
            time.sleep(0.1)
        ready = time.monotonic() - began
        pid = server_pid(args.port)
        server_mem = tree_rss_mib(pid) if pid else float("nan")
        serve_mem = rss_mib(proc.pid)

        shutil.copy(video, inbox / "interview-kk.mp4")
        first_s = wait_for_bundle(archive, file_sha256(video)[:12], 900)
        serve_mem_after = rss_mib(proc.pid)
        shutil.copy(second, inbox / "interview-en.mp4")
        second_s = wait_for_bundle(archive, file_sha256(second)[:12], 900)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        log.close()

    machine = machine_info("cpu")
    lines = [
        "# `testimony serve`: startup, memory, drop to bundle", "",
        f"- date: {machine['date']}", f"- cpu: {machine['cpu']}", f"- versions: {machine['versions']}",
        f"- load average: {machine['load average']}", "",
        "| figure | value |", "|---|---|",
        f"| start to ready (server start, 4 deployments, watcher) | {ready:.1f} s |",
        f"| Prefect server memory (RSS, with its children) | {server_mem:.0f} MiB |",
        f"| `testimony serve` memory at ready | {serve_mem:.0f} MiB |",
        f"| `testimony serve` memory after the first video (models loaded) | {serve_mem_after:.0f} MiB |",
        f"| drop to bundle, first {args.seconds:.0f} s video (Kazakh, loads base) | {first_s:.1f} s |",
        f"| drop to bundle, second {args.seconds:.0f} s video (English, models loaded) | {second_s:.1f} s |",
        "", "Command: `.venv/bin/python bench/serve_latency.py`; defaults: Whisper base on CPU, openai-whisper engine,",
        "language auto-detected, word timestamps on; drop-to-bundle includes the watcher's 2 s settle time.", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
