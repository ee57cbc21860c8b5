"""Prefect flow over the pipeline's one orchestration: retries for transient faults, caching on the SHA-256.

The order of the stages, custody, reuse and cleanup are `pipeline.run.process`'s; this module hands it
the stages wrapped as Prefect tasks (`prefect_stages`) and adds the UI's artifacts. Parameters are
flat and JSON-friendly so a deployment's form in the Prefect UI can set them.
"""

from __future__ import annotations

import hashlib
import inspect
import subprocess
from pathlib import Path
from typing import Any, Callable

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline import config
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.errors import TestimonyError
from pipeline.run import options as options_table
from pipeline.run import process
from pipeline.run.process import RunOptions, RunResult, Stages
from pipeline.transcript import Transcript

from .scale_out import gpu_slot
from .server import results_dir

config.apply_privacy_defaults()


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry faults of the machine (I/O hiccups, a stalled tool), never bad input or a bug."""
    try:
        state.result()
    except (TestimonyError, FileNotFoundError, PermissionError, IsADirectoryError):
        return False
    except (OSError, subprocess.TimeoutExpired):
        return True
    except Exception:
        return False
    return False


def _asr_key(_ctx: Any, params: dict[str, Any]) -> str:
    return f"asr-{params['sha256']}-{params['options'].key()}"


def _diarize_key(_ctx: Any, params: dict[str, Any]) -> str:
    return f"diarize-{params['sha256']}-{params['options'].key()}"


def _translate_key(_ctx: Any, params: dict[str, Any]) -> str:
    """A newly installed package or another pinned pivot must invalidate an earlier result."""
    route = process.translation_record(params["language"])
    spelled = f"-{_digest(params['spellings'])}" if params.get("spellings") else ""  # glossary `NAME = English`
    return f"translate-{params['language']}-{_digest(params['texts'])}-{_digest(route)}{spelled}"


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


_RETRY = {"retry_condition_fn": _transient}
TASKS: dict[str, dict[str, Any]] = {  # Prefect's settings for each stage `pipeline.run.process` names
    "hash": {**_RETRY, "retries": 2, "retry_delay_seconds": 2, "cache_policy": NO_CACHE},
    # stage_extract reuses a finished WAV itself, after checking its hash
    "extract-audio": {**_RETRY, "retries": 2, "retry_delay_seconds": 2, "cache_policy": NO_CACHE},
    "transcribe": {**_RETRY, "retries": 1, "cache_key_fn": _asr_key, "persist_result": True},
    "diarize": {**_RETRY, "retries": 1, "cache_key_fn": _diarize_key, "persist_result": True},
    "translate": {**_RETRY, "retries": 1, "cache_key_fn": _translate_key, "persist_result": True},
    "write-bundle": {**_RETRY, "retries": 2, "retry_delay_seconds": 2, "cache_policy": NO_CACHE},
}


def prefect_stages(archive: Path, *, force: bool = False) -> Stages:
    """The pipeline's stages as Prefect tasks; `force` recomputes instead of reading the cache."""
    storage = results_dir(archive).resolve()  # a Path: Prefect makes it a local file system of its own

    def wrap(name: str, fn: Callable) -> Callable:
        settings = {**TASKS[name], **({"result_storage": storage} if TASKS[name].get("persist_result") else {})}
        made = task(fn, name=name, **settings)
        if force:
            made = made.with_options(refresh_cache=True)
        if name == "transcribe":
            return _in_gpu_slot(made)
        return made

    return Stages(wrap)


def _in_gpu_slot(stage: Callable) -> Callable:
    def run(*args: Any, **kwargs: Any) -> Any:
        with gpu_slot():  # a slot of the GPU's global limit when a scale-out worker names one
            return stage(*args, **kwargs)

    return run


def process_video(video: str, out: str | None = None, force: bool = False, **settings: Any) -> RunResult:
    """Turn one video into a linked transcript bundle under the archive `out`.

    The other parameters are the run options of `pipeline.run.options`, as `testimony run` takes them.
    """
    archive = config.archive_dir(out)
    options = RunOptions.from_flat(**settings, archive=archive)  # this archive's adapted models, no other's
    result = process.process_video(video, archive, options, force=force, stages=prefect_stages(archive, force=force))
    if result.status == "done":
        show_in_ui(archive, result.bundle)
    return result


_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
process_video.__signature__ = options_table.flow_parameters(  # the deployment form shows every option
    [inspect.Parameter("video", _KEYWORD, annotation=str),
     inspect.Parameter("out", _KEYWORD, default=None, annotation=str | None)],
    [inspect.Parameter("force", _KEYWORD, default=False, annotation=bool)],
    return_annotation=RunResult)
process_video_flow = flow(name="process-video", log_prints=True)(process_video)


def show_in_ui(archive: Path, bundle: Path) -> None:
    """The transcript's and the archive's artifacts; the bundle on disk is complete if these fail."""
    from .artifacts import publish_transcript, refresh_archive_table

    publish_transcript(Transcript.load(bundle / TRANSCRIPT), bundle)
    refresh_archive_table(archive)
