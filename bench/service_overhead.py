"""What the service costs over the work: bursts of files through `testimony run` and through `serve`.

One `serve` is started in a fresh data folder and warmed with one file (not counted, like `run`'s
warm-up). Then, for each round, N interview-like videos are built (bench/stage_times.py's, each a
different length so each has its own SHA-256) and timed twice, one right after the other:
1. `testimony run` on all of them in one process, into an archive of its own: start to exit;
2. all N copied into serve's inbox at once: copy to the last bundle (the watcher's settle time
   included, as a user meets it).
This machine's speed drifts by a quarter from one minute to the next, so the rounds alternate the
two and the ratio is quoted per round and as the median. Same model, engine and options on both
sides: serve's inbox defaults (Whisper base through the openai-whisper engine, language
auto-detected, word timestamps on). CPU seconds are the OS's accounting: run's process, serve's own
process, and what serve started (the Prefect server; ffmpeg). Results go to stdout and
bench/results-service.md.

    .venv/bin/python bench/service_overhead.py [--files 8] [--seconds 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
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


def time_run(videos: list[Path], archive: Path, env: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of one `testimony run` over all of `videos`."""
    cpu_before = _children_cpu()
    began = time.monotonic()
    subprocess.run([str(TESTIMONY), "run", *map(str, videos), "--out", str(archive)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - began, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one live process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (the Prefect server serve started, and its own children)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _serve_cpu(pid: int) -> tuple[float, float]:
    """(serve's own process, the processes it started) CPU seconds so far."""
    return _cpu_seconds(pid), sum(_cpu_seconds(child) for child in _descendants(pid))


def bundles(archive: Path) -> int:
    return sum(1 for p in archive.glob("*/manifest.json")) if archive.is_dir() else 0


class Service:
    """One `testimony serve` in a fresh data folder, fed bursts of files."""

    def __init__(self, work: Path, env: dict, port: int) -> None:
        self.inbox, self.archive, self.log_path = work / "inbox", work / "serve-archive", work / "serve.log"
        env = {**env, "TESTIMONY_DATA": str(work / "data")}
        began = time.monotonic()
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(TESTIMONY), "serve", "--inbox", str(self.inbox), "--out",
                                      str(self.archive), "--port", str(port)], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        while "ready in" not in self.log_path.read_text():
            if self.proc.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
            time.sleep(0.1)
        self.ready_s = time.monotonic() - began

    def burst(self, videos: list[Path], profile: str | None = None) -> tuple[float, tuple[float, float]]:
        """(copy to the last bundle, CPU of (serve, what it started) meanwhile) for one burst."""
        expected = bundles(self.archive) + len(videos)
        cpu_before = _serve_cpu(self.proc.pid)
        spy = _start_profile(self.proc.pid, profile) if profile else None
        dropped = time.monotonic()
        for video in videos:  # builds name their videos alike: prefix round and build
            shutil.copy(video, self.inbox / f"{video.parent.parent.name}-{video.parent.name}-{video.name}")
        while bundles(self.archive) < expected:
            if self.proc.poll() is not None or time.monotonic() - dropped > 3600:
                raise RuntimeError(self.log_path.read_text()[-3000:])
            time.sleep(0.2)
        wall = time.monotonic() - dropped
        cpu_after = _serve_cpu(self.proc.pid)
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        return wall, (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)
        self._log.close()


def _start_profile(pid: int, out: str) -> subprocess.Popen:
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "speedscope", "--rate", "50",
                             "--output", out, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report(args: argparse.Namespace, rounds: list[dict], ready_s: float) -> str:
    machine = machine_info("cpu")
    n = args.files
    ratios = [r["serve"] / r["run"] for r in rounds]
    extra = [(r["serve"] - r["run"]) / n for r in rounds]
    lines = [
        "# The service's cost over the work: bursts of files", "",
        f"- date: {machine['date']}", f"- cpu: {machine['cpu']}", f"- versions: {machine['versions']}",
        f"- load average: {machine['load average']}",
        f"- {args.rounds} rounds of {n} videos of {args.seconds:.0f}-{args.seconds + n * args.rounds:.0f} s "
        f"(espeak-ng `{args.voice}` speech with pauses), Whisper base, openai-whisper engine, language auto, "
        "word timestamps on", "",
        "| round | run wall s | serve wall s | serve / run | per file s | run CPU s | serve CPU s | "
        "serve's children CPU s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k, r in enumerate(rounds, 1):
        lines.append(f"| {k} | {r['run']:.1f} | {r['serve']:.1f} | {ratios[k - 1]:.3f} | {extra[k - 1]:+.2f} | "
                     f"{r['run_cpu']:.1f} | {r['serve_cpu'][0]:.1f} | {r['serve_cpu'][1]:.1f} |")
    lines += ["", f"serve / run, median of {len(rounds)} rounds: **{statistics.median(ratios):.3f}** "
              f"({statistics.median(extra):+.2f} s per file); serve's start to ready: {ready_s:.1f} s "
              "(not counted).", "",
              "Command: `.venv/bin/python bench/service_overhead.py " +
              f"--files {n} --seconds {args.seconds:g} --rounds {args.rounds} --voice {args.voice}`", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=50.0, help="length of the first video (default: 50)")
    parser.add_argument("--rounds", type=int, default=3, help="run/serve pairs, alternating (default: 3)")
    parser.add_argument("--voice", choices=["en", "kk"], default="en", help="espeak-ng voice (default: en)")
    parser.add_argument("--port", type=int, default=4398)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--profile", help="also sample serve's process with py-spy during the last burst, into "
                        "this speedscope file (py-spy must be on PATH)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="service-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME", "TESTIMONY_OUT")}
    service = None
    try:
        warm = make_videos(work / "warm", 1, args.seconds - 1, args.voice)
        time_run(warm, work / "warm-up", env)  # not counted: base converted into the store, caches warm
        service = Service(work, env, args.port)
        service.burst(warm)  # not counted: serve loads its models
        rounds = []
        for k in range(args.rounds):
            videos = make_videos(work / f"round-{k}", args.files, args.seconds + k * args.files, args.voice)
            run_s, run_cpu = time_run(videos, work / f"run-archive-{k}", env)
            profile = args.profile if k == args.rounds - 1 else None
            serve_s, serve_cpu = service.burst(videos, profile)
            rounds.append({"run": run_s, "run_cpu": run_cpu, "serve": serve_s, "serve_cpu": serve_cpu})
            print(f"round {k + 1}: run {run_s:.1f} s, serve {serve_s:.1f} s", flush=True)
    finally:
        if service:
            service.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, rounds, service.ready_s)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
