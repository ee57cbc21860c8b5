"""What the review workflow costs as an archive grows (issue 21): one transition, the progress view, a
language's queue, and the rebuild of the state index from the custody logs.

The catalog holds `--videos` synthetic videos (rows in a real catalog.sqlite, half Kazakh, half Uyghur,
durations of 10 to 120 minutes); `--moved` of them are claimed through `workflow.claim` (a real custody
event and index row each, under the video's lock), and every tenth of those released again. Then:

    .venv/bin/python bench/workflow.py [--videos 10000] [--moved 1000]

prints the mean and worst time of a claim, of `progress`, of `queue("kk")`, and of the first
`progress` after the index was deleted (which rebuilds it from every custody log).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.archive import catalog  # noqa: E402
from pipeline.review import accounts, workflow, workflow_record  # noqa: E402


def _fill_catalog(archive: Path, count: int) -> list[tuple[str, str]]:
    """`count` published videos as catalog rows: (sha256, language) each."""
    rng = random.Random(21)
    rows = []
    for n in range(count):
        sha = hashlib.sha256(f"video {n}".encode()).hexdigest()
        language = "kk" if n % 2 else "ug"
        rows.append((sha, sha[:12], f"interview {n}.mp4", language, language, rng.uniform(600, 7200), "done",
                     f"{sha[:12]}-interview", f"2026-{1 + n % 12:02d}-01T00:00:00+00:00", 100))
    with catalog.connect(archive) as con:
        con.execute("BEGIN")
        con.executemany("INSERT INTO videos (sha256, id, file_name, language, detected_language, duration, status, "
                        "bundle, created, segments) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")
    return [(r[0], r[3]) for r in rows]


def _timed(call, repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _show(what: str, times: list[float]) -> None:
    print(f"{what:<44} mean {statistics.mean(times) * 1000:8.1f} ms   worst {max(times) * 1000:8.1f} ms"
          f"   ({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10000)
    parser.add_argument("--moved", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder)
        videos = _fill_catalog(archive, args.videos)
        accounts.add(archive, "kk1", "reviewer", ("kk",), password="bench password")
        accounts.add(archive, "ug1", "reviewer", ("ug",), password="bench password")
        people = {lang: accounts.get(archive, f"{lang}1") for lang in ("kk", "ug")}
        moved = videos[:args.moved]
        claims = [_timed(lambda: workflow.claim(archive, sha, people[lang]))[0] for sha, lang in moved]
        for sha, lang in moved[::10]:
            workflow.release(archive, sha, people[lang])
        print(f"{args.videos} videos in the catalog, {args.moved} claimed, {len(moved[::10])} released again")
        _show("claim (custody event + index row, locked)", claims)
        _show("progress over every video", _timed(lambda: workflow.progress(archive), 5))
        _show("queue('kk')", _timed(lambda: workflow.queue(archive, "kk"), 5))
        rebuilt = []
        for _ in range(3):
            workflow_record.index_path(archive).unlink()
            rebuilt += _timed(lambda: workflow.progress(archive))
        _show(f"progress, index rebuilt from {args.moved} custody logs", rebuilt)


if __name__ == "__main__":
    main()
