"""Costs that must stay flat as an archive or an interview grows (issue 20, finding 9).

Three figures, each on synthetic but realistically shaped data built at run time:

- `list`: the workspace's archive page (`GET /api/bundles`) over 10,000 bundles (a transcript.json of
  `--segments-per-bundle` segments each, indexed into a real catalog first). Times the request through
  a real uvicorn server on 127.0.0.1, and the worst latency of a tiny request (`/static/workspace.css`)
  sent while list requests run, which shows whether the list blocks the event loop.
- `save`: one review save on a 700-segment bundle with 50 earlier revisions: wall time, and the bytes
  the process wrote (`wchar` of /proc/self/io) and that landed in new files of the bundle.
- `glossary`: glossary flagging of 5,000 entries over a 3-hour interview (~2,500 segments). The code
  before the index takes about 40 minutes for that, so `--glossary-segments` times a slice and the
  figure is scaled up linearly (flagging is per segment).

Measure the untouched code with BENCH_CODE pointing at another checkout (its pipeline/ is imported):

    BENCH_CODE=/work/main .venv/bin/python bench/costs.py all --glossary-segments 40
    .venv/bin/python bench/costs.py all
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("BENCH_CODE", REPO)).resolve()
sys.path.insert(0, str(CODE))

AUTH = ("reviewer", "bench-password")
LETTERS = "абвгдежзийклмнопрстуфхшыэәғқңөұүһі"
COMMON = ["мен", "біз", "ол", "және", "болды", "келді", "жылы", "лагерь", "үйге", "әкем", "шешем", "бала",
          "қалада", "түрме", "сұрады", "айтты", "кейін", "бұрын", "барлық", "адамдар", "жұмыс", "күні"]


def wchar() -> int:
    """Bytes this process has passed to write() so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _transcript_dict(sha: str, n: int, segments: int) -> dict:
    """A transcript.json as a run writes it, with `segments` short segments and two speakers."""
    segs = [{"id": i, "start": i * 5.0, "end": i * 5.0 + 4.0, "text": " ".join(COMMON[(i + k) % 22] for k in range(8)),
             "translation": "my father was in the camp", "avg_logprob": -0.4, "no_speech_prob": 0.1,
             "compression_ratio": 1.2, "flags": [], "words": None, "temperature": 0.0,
             "speaker": f"S{i % 2 + 1}", "checked": False, "english_source": "machine", "suggestions": None}
            for i in range(segments)]
    return {"schema": "testimony.transcript/1",
            "source": {"file_name": f"interview {n:05d}.mp4", "sha256": sha, "size": 1000, "duration": 3600.0,
                       "audio_track": {"index": 1}, "decoded_duration": 3600.0},
            "language": "kk", "detected_language": "kk", "language_probability": 0.9, "models": {"asr": {}},
            "segments": segs, "flags": [], "warnings": [], "created": "2026-12-01T00:00:00+00:00"}


def build_archive(root: Path, bundles: int, segments: int) -> Path:
    """`bundles` bundle folders holding a transcript.json each, then indexed by the catalog's sync."""
    from pipeline.transcript import SCHEMA

    archive = root / "archive"
    archive.mkdir(mode=0o700)
    for n in range(bundles):
        sha = hashlib.sha256(f"bench video {n}".encode()).hexdigest()
        folder = archive / f"{sha[:12]}-interview-{n:05d}"
        folder.mkdir(mode=0o700)
        data = {**_transcript_dict(sha, n, segments), "schema": SCHEMA}
        (folder / "transcript.json").write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return archive


def _start(archive: Path) -> tuple[str, object]:
    """A real uvicorn server for the workspace app, in a thread; returns its URL and the server."""
    import socket

    import uvicorn

    from pipeline.review import accounts, server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if accounts.get(archive, AUTH[0]) is None:
        accounts.add(archive, AUTH[0], "admin", password=AUTH[1], must_change=False)
    app = server.build_app(archive, origin=f"http://127.0.0.1:{port}")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv


def bench_list(args: argparse.Namespace, tmp: Path) -> dict:
    import httpx

    from pipeline.archive import catalog

    t0 = time.perf_counter()
    archive = build_archive(tmp, args.bundles, args.segments_per_bundle)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    catalog.sync(archive)
    indexed = time.perf_counter() - t0
    url, srv = _start(archive)
    times, sizes, rows = [], [], 0
    stalls: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(auth=AUTH, timeout=600) as client:
            while not done.is_set():
                t = time.perf_counter()
                client.get(url + "/static/workspace.css")
                stalls.append(time.perf_counter() - t)
                time.sleep(0.01)

    with httpx.Client(auth=AUTH, timeout=600) as client:
        client.get(url + "/api/bundles")  # warm: the first sync after start
        prober = threading.Thread(target=probe)
        prober.start()
        for _ in range(args.repeat):
            t = time.perf_counter()
            response = client.get(url + "/api/bundles")
            times.append(time.perf_counter() - t)
            sizes.append(len(response.content))
            body = response.json()
            rows = len(body["bundles"])
        done.set()
        prober.join()
        total = body.get("total", rows)
        deep = None
        if "total" in body:  # paged: the last page costs what the first does
            t = time.perf_counter()
            client.get(url + "/api/bundles", params={"offset": total - 50, "limit": 50})
            deep = time.perf_counter() - t
    srv.should_exit = True
    return {"bundles": args.bundles, "segments per bundle": args.segments_per_bundle,
            "build files s": round(built, 1), "first catalog sync s": round(indexed, 1),
            "GET /api/bundles median s": round(statistics.median(times), 3), "rows returned": rows,
            "total": total, "response bytes": statistics.median(sizes),
            "last page s": round(deep, 3) if deep is not None else "-",
            "worst /static latency during list s": round(max(stalls), 3) if stalls else "-"}


def _bundle_files(bundle: Path) -> dict[int, int]:
    return {p.stat().st_ino: p.stat().st_size for p in bundle.rglob("*") if p.is_file()}


def bench_save(args: argparse.Namespace, tmp: Path) -> dict:
    from pipeline.archive import catalog
    from pipeline.archive.bundle import find_bundle
    from pipeline.review import revisions
    from pipeline.review.save import save_revision
    from pipeline.run import process
    from pipeline.transcript import Transcript

    archive = tmp / "save-archive"
    sha = hashlib.sha256(b"bench save").hexdigest()
    data = _transcript_dict(sha, 0, args.save_segments)
    data["source"]["duration"] = args.save_segments * 5.0
    from pipeline.transcript import SCHEMA

    process.publish_transcript(archive, Transcript.from_dict({**data, "schema": SCHEMA}))
    catalog.sync(archive)

    def one_save(k: int) -> None:
        bundle = find_bundle(archive, sha)
        newest = revisions.newest(bundle)
        segments = [dict(s) for s in newest.segments]
        segments[k % len(segments)]["text"] += f" ({k})"
        save_revision(archive, sha, base=newest.sha256, author="bench", segments=segments)

    t0 = time.perf_counter()
    for k in range(args.earlier):
        one_save(k)
    setup = time.perf_counter() - t0
    times, written, new_bytes = [], [], []
    for k in range(args.earlier, args.earlier + args.repeat):
        before = _bundle_files(find_bundle(archive, sha))
        w, t = wchar(), time.perf_counter()
        one_save(k)
        times.append(time.perf_counter() - t)
        written.append(wchar() - w)
        after = _bundle_files(find_bundle(archive, sha))
        new_bytes.append(sum(size for ino, size in after.items() if ino not in before))
    bundle = find_bundle(archive, sha)
    return {"segments": args.save_segments, "earlier revisions": args.earlier,
            f"{args.earlier} earlier saves s": round(setup, 1),
            "one save median s": round(statistics.median(times), 3),
            "bytes written by the save (wchar)": statistics.median(written),
            "bytes in new files of the bundle": statistics.median(new_bytes),
            "revision folder bytes": sum(p.stat().st_size for p in (bundle / "revisions").iterdir())}


def _word(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi))).capitalize()


def _mutate(rng: random.Random, word: str) -> str:
    i = rng.randrange(len(word))
    return word[:i] + rng.choice(LETTERS) + word[i + 1:]


def glossary_data(entries: int, segments: int, seed: int = 20, vocabulary: int = 0) -> tuple[list[str], list[str]]:
    """Names of one to three words, and segments of ~15 words where now and then a name is said
    exactly, inflected or misheard by a letter. The other words come from COMMON, or with `vocabulary`
    from that many made-up words as well, drawn by Zipf's law as speech draws them."""
    rng = random.Random(seed)
    words = COMMON + [_word(rng, 2, 12).lower() for _ in range(vocabulary)]
    weights = [1 / rank for rank in range(1, len(words) + 1)]
    names: dict[str, None] = {}
    while len(names) < entries:
        names[" ".join(_word(rng, 3, 11) for _ in range(rng.choice((1, 1, 2, 3))))] = None
    texts = []
    for _ in range(segments):
        said = rng.choices(words, weights, k=rng.randint(10, 20))
        for _ in range(rng.randint(0, 2)):
            name = rng.choice(list(names)[:2000])
            heard = rng.choice((name, name + "да", _mutate(rng, name), _mutate(rng, name) + "ға"))
            said.insert(rng.randrange(len(said) + 1), heard)
        texts.append(" ".join(said))
    return list(names), texts


def bench_glossary(args: argparse.Namespace, _tmp: Path) -> dict:
    from pipeline.stages import glossary
    from pipeline.transcript import Segment, Source, Transcript

    names, texts = glossary_data(args.entries, args.glossary_segments, vocabulary=args.vocabulary)
    step = 3 * 3600.0 / args.interview_segments
    segments = [Segment(i, i * step, i * step + step * 0.9, text) for i, text in enumerate(texts)]
    transcript = Transcript(Source("x.mp4", "0" * 64, 1, 10800.0, {}), "kk", "kk", 0.9, {}, segments)
    t0 = time.perf_counter()
    glossary.flag(transcript, glossary.Glossary(tuple(names)))
    took = time.perf_counter() - t0
    flagged = sum(bool(s.suggestions) for s in transcript.segments)
    return {"entries": len(names), "other words": len(COMMON) + args.vocabulary,
            "segments timed": len(texts), "flagging s": round(took, 2),
            "segments flagged": flagged,
            f"scaled to {args.interview_segments} segments (3 h) s":
                round(took * args.interview_segments / len(texts), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("list", "save", "glossary", "all"))
    parser.add_argument("--bundles", type=int, default=10_000)
    parser.add_argument("--segments-per-bundle", type=int, default=20)
    parser.add_argument("--save-segments", type=int, default=700)
    parser.add_argument("--earlier", type=int, default=50)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--interview-segments", type=int, default=2500)
    parser.add_argument("--glossary-segments", type=int, default=2500, help="segments timed (default: all)")
    parser.add_argument("--vocabulary", type=int, default=0, help="made-up words spoken besides the 22 common")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TESTIMONY_AUTH", ":".join(AUTH))
    print(f"code: {CODE}  python {sys.version.split()[0]}  cpus {os.cpu_count()}  "
          f"load {os.getloadavg()[0]:.2f}  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    chosen = ("list", "save", "glossary") if args.what == "all" else (args.what,)
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        for what in chosen:
            figures = {"list": bench_list, "save": bench_save, "glossary": bench_glossary}[what](args, Path(tmp))
            print(f"## {what}")
            for key, value in figures.items():
                print(f"- {key}: {value}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
