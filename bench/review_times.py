"""How long the review workspace takes with a 1-hour transcript: opening the editor, and one save.

Builds a transcript of ~700 segments over an hour (UDHR lines in Kazakh with their English, as a
long interview would give), publishes it through the run's own path, starts `testimony review`,
then, in real Chromium (Playwright), times from navigation to the editor being usable (every
segment drawn and the page answering); and through the JSON API times saves of one corrected
segment, each re-rendering every file of the bundle and logging custody. Medians of --repeat
runs; results go to stdout and bench/results-review.md.

    .venv/bin/python bench/review_times.py [--segments 700] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stage_times import machine_info  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results-review.md"
AUTH = ("reviewer", "bench-password")


def build_archive(root: Path, count: int) -> str:
    """A published bundle of `count` segments spread over an hour; returns its id."""
    from pipeline.archive import catalog
    from pipeline.run import process
    from pipeline.transcript import Segment, Source, Transcript
    from tests.media_factory import udhr

    kk, en = udhr("kk"), udhr("en")
    step = 3600.0 / count
    segments = [Segment(n, round(n * step, 3), round(n * step + step * 0.9, 3), kk[n % len(kk)], en[n % len(en)],
                        -0.5, 0.1, 1.2, [], None, 0.0, english_source="machine") for n in range(count)]
    sha = hashlib.sha256(f"bench {count}".encode()).hexdigest()
    transcript = Transcript(Source("an hour-long interview.mp4", sha, 1, 3600.0, {"index": 1}), "kk", "kk", 0.9,
                            {"asr": {"name": "base"}}, segments, created="2026-12-01T00:00:00+00:00")
    process.publish_transcript(root, transcript)
    catalog.sync(root)
    return sha[:12]


def start_server(archive: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TESTIMONY_AUTH": ":".join(AUTH)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "review", "--out", str(archive), "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("testimony review did not start")
            time.sleep(0.2)


def time_open(url: str, count: int, repeat: int) -> list[float]:
    import shutil as _shutil

    from playwright.sync_api import sync_playwright

    chromium = _shutil.which("chromium") or _shutil.which("chromium-browser")
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for _ in range(repeat):
            context = browser.new_context(http_credentials={"username": AUTH[0], "password": AUTH[1]})
            page = context.new_page()
            began = time.monotonic()
            page.goto(url)
            page.wait_for_selector(f"#segments .seg:nth-child({count})", state="attached", timeout=120_000)
            page.evaluate("1")  # the page answers: its script is no longer busy drawing
            times.append(time.monotonic() - began)
            context.close()
        browser.close()
    return times


def time_saves(base_url: str, bundle_id: str, repeat: int) -> list[float]:
    client = httpx.Client(auth=AUTH, timeout=120)
    token = re.search(r'name="testimony-token" content="([^"]+)"', client.get(base_url + "/").text)[1]
    headers = {"X-Testimony-Token": token, "Content-Type": "application/json"}
    times = []
    for n in range(repeat):
        data = client.get(f"{base_url}/api/bundles/{bundle_id}").json()
        segments = data["segments"]
        segments[n]["text"] += " (corrected)"
        began = time.monotonic()
        response = client.post(f"{base_url}/api/bundles/{bundle_id}/revisions", headers=headers,
                               json={"base": data["revision"], "author": "bench", "segments": segments})
        times.append(time.monotonic() - began)
        if response.status_code != 201:
            raise RuntimeError(response.text)
    return times


def report(args: argparse.Namespace, opened: list[float], saved: list[float]) -> str:
    machine = machine_info("cpu")

    def row(label: str, values: list[float]) -> str:
        return f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"

    return "\n".join([
        "# The review workspace with a 1-hour transcript", "",
        f"- date: {machine['date']}", f"- cpu: {machine['cpu']}", f"- load average: {machine['load average']}",
        f"- {args.segments} segments over 3600 s (Kazakh UDHR lines with their English), {args.repeat} runs each",
        "", "| what | median s | min s | max s |", "|---|---:|---:|---:|",
        row("open the editor until usable (Chromium: navigation to every segment drawn)", opened),
        row("save one corrected segment (API: check, merge, re-render the bundle, custody, catalog)", saved),
        "", f"Command: `.venv/bin/python bench/review_times.py --segments {args.segments} --repeat {args.repeat}`",
        ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=700)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=4397)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="review-bench-"))
    proc = None
    try:
        bundle_id = build_archive(root, args.segments)
        proc = start_server(root, args.port)
        url = f"http://127.0.0.1:{args.port}"
        opened = time_open(f"{url}/edit/{bundle_id}", args.segments, args.repeat)
        saved = time_saves(url, bundle_id, args.repeat)
    finally:
        if proc:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    text = report(args, opened, saved)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
