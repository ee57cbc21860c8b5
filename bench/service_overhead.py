"""What the service costs over the work: a burst of files through `testimony run`, then through `serve`.

Builds N interview-like videos (bench/stage_times.py's, different lengths so each has its own
SHA-256), then
1. `testimony run` on all of them in one process, into an archive of its own: wall time from start
   to exit;
2. `testimony serve` in a fresh data folder; once it is ready, all N are copied into its inbox at
   once: wall time from the copy to the last bundle (the watcher's settle time included, as a user
   meets it).
Same model, engine and options on both sides: serve's inbox defaults (Whisper base through the
openai-whisper engine, language auto-detected, word timestamps on). Prints both, the
ratio and the per-file difference; results go to stdout and bench/results-service.md.

    .venv/bin/python bench/service_overhead.py [--files 8] [--seconds 50]
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

DEFAULT_OUT = REPO / "bench" / "results-service.md"
TESTIMONY = REPO / ".venv" / "bin" / "testimony"


def make_videos(work: Path, files: int, seconds: float, voice: str) -> list[Path]:
    """`files` videos, each a little longer than the last so no two share a hash.

    English by default: espeak-ng's Kazakh sends base into temperature-fallback loops that make the
    decoding, not the service, dominate (see tests/test_reproducible.py); `--voice kk` for that case.
    """
    column = "kk" if voice == "kk" else "en"
    return [build_video(work / f"build-{n}", seconds + n, voice=voice, column=column)[0] for n in range(files)]


def time_run(videos: list[Path], archive: Path, env: dict) -> float:
    began = time.monotonic()
    subprocess.run([str(TESTIMONY), "run", *map(str, videos), "--out", str(archive)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def bundles(archive: Path) -> int:
    return sum(1 for p in archive.glob("*/manifest.json")) if archive.is_dir() else 0


def time_serve(videos: list[Path], work: Path, env: dict, port: int) -> tuple[float, float]:
    """(start to ready, copy to the last bundle) of a fresh `serve`."""
    inbox, archive = work / "inbox", work / "serve-archive"
    log_path = work / "serve.log"
    env = {**env, "TESTIMONY_DATA": str(work / "data")}
    began = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(TESTIMONY), "serve", "--inbox", str(inbox), "--out", str(archive),
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while "ready in" not in log_path.read_text():
                if proc.poll() is not None:
                    raise RuntimeError(log_path.read_text())
                time.sleep(0.1)
            ready = time.monotonic() - began
            dropped = time.monotonic()
            for n, video in enumerate(videos):  # every build names its video alike
                shutil.copy(video, inbox / f"{n:02}-{video.name}")
            while bundles(archive) < len(videos):
                if time.monotonic() - dropped > 3600:
                    raise TimeoutError(log_path.read_text()[-3000:])
                time.sleep(0.2)
            return ready, time.monotonic() - dropped
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)


def report(args: argparse.Namespace, run_s: float, ready_s: float, serve_s: float) -> str:
    machine = machine_info("cpu")
    n = args.files
    return "\n".join([
        "# The service's cost over the work: one burst of files", "",
        f"- date: {machine['date']}", f"- cpu: {machine['cpu']}", f"- versions: {machine['versions']}",
        f"- load average: {machine['load average']}",
        f"- {n} videos of {args.seconds:.0f}-{args.seconds + n - 1:.0f} s (espeak-ng `{args.voice}` speech with "
        "pauses), "
        "Whisper base, openai-whisper engine, language auto, word timestamps on", "",
        "| path | wall s | per file s |", "|---|---:|---:|",
        f"| `testimony run` (one process, all files) | {run_s:.1f} | {run_s / n:.2f} |",
        f"| `testimony serve`, all dropped at once (copy to last bundle) | {serve_s:.1f} | {serve_s / n:.2f} |",
        "", f"serve / run: **{serve_s / run_s:.3f}** ({(serve_s - run_s) / n:+.2f} s per file); "
        f"serve's start to ready: {ready_s:.1f} s (not counted).",
        "", "Command: `.venv/bin/python bench/service_overhead.py " +
        f"--files {n} --seconds {args.seconds:g} --voice {args.voice}`", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=50.0, help="length of the first video (default: 50)")
    parser.add_argument("--voice", choices=["en", "kk"], default="en", help="espeak-ng voice (default: en)")
    parser.add_argument("--port", type=int, default=4398)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="service-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME", "TESTIMONY_OUT")}
    try:
        videos = make_videos(work / "videos", args.files, args.seconds, args.voice)
        time_run(videos[:1], work / "warm-up", env)  # not counted: base converted into the store, caches warm
        run_s = time_run(videos, work / "run-archive", env)
        ready_s, serve_s = time_serve(videos, work, env, args.port)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, run_s, ready_s, serve_s)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
