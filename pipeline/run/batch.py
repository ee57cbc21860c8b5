"""Many videos in one run: extract the next video's audio while the current one is transcribed.

Why: hashing, probing and ffmpeg's decode are I/O and a child process, transcription is the model;
run side by side (one prefetch thread, so at most one extra WAV on disk) the CPU never waits for
ffmpeg between files. Models are loaded once per process by the engines' own caches.

Results come back in input order, each as a RunResult or the exception that stopped that file, so
one bad file never stops the batch. A video whose SHA-256 equals the one being transcribed is not
prefetched (it would share the work folder); it is prepared at its turn and finds that bundle.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from pipeline.hashing import file_sha256
from pipeline.run.process import PLAIN, Prepared, Progress, RunOptions, RunResult, Stages, finish_video, prepare_video
from pipeline.stages.media import check_readable


@dataclass(frozen=True)
class _Deferred:
    """Hashed only: same content as the video in flight, so it is prepared at its own turn."""

    sha256: str


def _prefetch(video: Path, archive: Path, options: RunOptions, force: bool, progress: Progress | None,
              busy: str | None, stages: Stages) -> Prepared | _Deferred:
    if progress:
        progress("hashing")
    check_readable(video)
    sha256 = file_sha256(video)
    if sha256 == busy:
        return _Deferred(sha256)
    return prepare_video(video, archive, options, force=force, progress=progress, sha256=sha256, stages=stages)


def run_many(videos: Iterable[str | Path], archive: str | Path, options: RunOptions, *, force: bool = False,
             progress_for: Callable[[Path], Progress | None] | None = None, stages: Stages = PLAIN,
             ) -> Iterator[tuple[Path, RunResult | Exception]]:
    """Process `videos` in order, overlapping each extraction with the previous transcription."""
    queue = [Path(v) for v in videos]
    archive = Path(archive)
    say = progress_for or (lambda _video: None)
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="testimony-prefetch") as pool:
        try:
            if queue:
                pending = pool.submit(_prefetch, queue[0], archive, options, force, say(queue[0]), None, stages)
            for n, video in enumerate(queue):
                current, pending = pending, None
                try:
                    job = current.result()
                    if isinstance(job, _Deferred):
                        job = prepare_video(video, archive, options, force=force, progress=say(video),
                                            sha256=job.sha256, stages=stages)
                except Exception as exc:  # this file failed before transcription: report, go on
                    job = exc
                if n + 1 < len(queue):
                    busy = job.sha256 if isinstance(job, Prepared) else None
                    pending = pool.submit(_prefetch, queue[n + 1], archive, options, force, say(queue[n + 1]), busy,
                                          stages)
                if isinstance(job, Exception):
                    yield video, job
                    continue
                try:
                    result: RunResult | Exception = finish_video(job, options, progress=say(video), stages=stages)
                except Exception as exc:
                    result = exc
                yield video, result
        finally:  # stopped early (error, Ctrl-C, consumer gone): never leave a prefetched WAV behind
            if pending is not None and not pending.cancel():
                try:
                    leftover = pending.result()
                except BaseException:
                    leftover = None
                if isinstance(leftover, Prepared):
                    leftover.release()
