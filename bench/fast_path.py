"""The fast path stays fast: a whole `testimony run --engine faster-whisper` (speakers on, as by
default) against the whole `whisper` CLI on the same clip and the same base weights, as pairs of
fresh processes (ours, then theirs, then ours ...), so a machine whose speed drifts moves both.

    .venv/bin/python bench/fast_path.py                 # 45 s clip, 5 pairs
    .venv/bin/python bench/fast_path.py --pairs 3 --seconds 30

A first run of ours is a warm-up, not counted (a first use may convert the store's checkpoint for
CTranslate2, which needs torch, once). Prints each pair's wall seconds, the medians, the median of
the pairwise ratios (target: at most 1/3), each side's peak RSS, and whether our process imported
torch (it should not: the speaker encoder is ONNX). Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

PROBE = ("import runpy, sys; sys.argv = ['testimony'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('pipeline.cli.main', run_name='__main__')\n"
         "finally:\n    print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS MiB (the process's own, from wait4) and its standard error."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, err


def commands(clip: Path, pt: str, work: Path) -> tuple[list[str], list[str]]:
    ours = [sys.executable, "-c", PROBE, "run", str(clip), "--engine", "faster-whisper", "--language", "en",
            "--out", str(work / "archive"), "--force"]
    theirs = [str(Path(sys.executable).with_name("whisper")), str(clip), "--model", pt, "--language", "en",
              "--output_dir", str(work / "cli"), "--output_format", "txt", "--device", "cpu"]
    return ours, theirs


def store_checkpoint() -> str:
    """The store's Whisper base checkpoint (what the CLI loads, so both read the same weights)."""
    from pipeline.store.whisper_store import resolve_whisper

    return str(resolve_whisper("base").path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=45.0)
    args = parser.parse_args(argv)
    from throughput import interview

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip, _ = interview(work / "clip.mp4", args.seconds, 0)
        ours, theirs = commands(clip, store_checkpoint(), work)
        env = {**os.environ, "DO_NOT_TRACK": "1"}
        _, _, first = timed(ours, env)  # a warm-up, not counted: a first use may convert the store's model
        print(f"warm-up run: torch imported: {'TORCH-IMPORTED' in first} (a first use converts base.pt for "
              "CTranslate2 with torch, once)", flush=True)
        rows = []
        for n in range(args.pairs):
            a_wall, a_rss, a_err = timed(ours, env)
            b_wall, b_rss, _ = timed(theirs, env)
            rows.append((a_wall, b_wall, a_rss, b_rss, "TORCH-IMPORTED" in a_err))
            print(f"pair {n + 1}: ours {a_wall:.2f} s, whisper CLI {b_wall:.2f} s, ratio {a_wall / b_wall:.3f}, "
                  f"torch imported by ours: {rows[-1][4]}", flush=True)
    print(f"\nclip: {args.seconds:.0f} s English (LibriVox), Whisper base; {args.pairs} pairs of fresh processes")
    ours_s, cli_s = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
    print(f"ours (testimony run --engine faster-whisper, speakers on): median {ours_s:.2f} s,"
          f" peak RSS {max(r[2] for r in rows):.0f} MiB, torch imported: {any(r[4] for r in rows)}")
    print(f"whisper CLI: median {cli_s:.2f} s, peak RSS {max(r[3] for r in rows):.0f} MiB")
    print(f"median of pairwise ratios ours/CLI: {statistics.median(r[0] / r[1] for r in rows):.3f} (target <= 0.333)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
