"""Beyond one machine, on Prefect's own distribution: a `process` work pool, workers on several machines,
and one global concurrency limit per GPU.

`testimony serve` runs flows inside its own process so models stay loaded; that ties the work to one
machine. Here the server (on PostgreSQL) only queues runs, and a worker on each machine starts a fresh
process per run from this source tree, which must sit at the same path on every machine, as must the
inbox, the archive and the model store (a shared mount). Workers bound how many runs a machine takes
(`--limit`); the GPU limit bounds how many transcriptions share one GPU, whichever worker started them.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from uuid import UUID

from pipeline import config
from pipeline.errors import TestimonyError

from .server import results_dir

LIMIT_ENV = "TESTIMONY_CONCURRENCY_LIMIT"  # set on a worker: the global limit its transcriptions take
# (entrypoint importable from the repository root, deployment name, description)
DEPLOYMENTS = (
    ("flows.process_video.process_video_flow", "process-video",
     "Transcribe and translate one video: give its path on the shared storage."),
    ("flows.service_flows.process_folder", "process-folder",
     "Every video in a folder on the shared storage; bad files are reported and the rest go on."),
)


def gpu_limit_name(index: int) -> str:
    return f"testimony-gpu-{index}"


@contextmanager
def gpu_slot() -> Iterator[None]:
    """Hold a slot of the limit named by `TESTIMONY_CONCURRENCY_LIMIT` while transcribing.

    Unset (one machine, `testimony run`, `serve`), nothing is asked of the server. Set, a missing limit
    is an error rather than a silent free-for-all on the GPU; a server blip while renewing the lease
    does not abort an hour of transcription.
    """
    name = os.environ.get(LIMIT_ENV, "").strip()
    if not name:
        yield
        return
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency

    held = False
    try:
        with concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
            held = True
            yield
    except ConcurrencySlotAcquisitionError as exc:
        if held:
            raise
        raise TestimonyError(
            f"this worker's {LIMIT_ENV} names the global concurrency limit {name!r}, which the Prefect "
            f"server does not have: create it (`testimony deploy --pool POOL --gpu-limit N`, or `prefect "
            f"gcl create {name} --limit 1`) or correct the variable, then run the video again") from exc


@dataclass
class Deployed:
    pool: str
    pool_created: bool
    deployments: dict[str, UUID] = field(default_factory=dict)  # "flow/deployment" -> id
    limits_created: list[str] = field(default_factory=list)
    limits_kept: list[str] = field(default_factory=list)


def job_env(out: Path, models: Path) -> dict[str, str]:
    """What every run needs whatever the worker's machine has set: privacy, the shared model store,
    and cached stage results on the shared archive, so a video run again after a crash, on any
    machine, reuses its finished stages."""
    return {**config.PRIVACY_ENV, "TESTIMONY_MODELS": str(models),
            "PREFECT_LOCAL_STORAGE_PATH": str(results_dir(out))}


def ensure_pool(pool: str) -> bool:
    """Create the `process` work pool unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            return False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type=ProcessWorker.type,
                base_job_template=ProcessWorker.get_default_base_job_template(),
                description="testimony: one fresh process per video, on any machine with a worker"))
            return True


def ensure_limits(names: list[str], slots: int = 1) -> tuple[list[str], list[str]]:
    """Create missing global concurrency limits; an existing one keeps the slots an admin gave it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    created, kept = [], []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
                kept.append(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
                created.append(name)
    return created, kept


def deploy_to_pool(pool: str, out: Path, *, models: Path | None = None, gpus: int = 0,
                   source: Path = config.REPO_ROOT) -> Deployed:
    """Pool, GPU limits and our deployments on the server named by `PREFECT_API_URL`.

    The flows come from `source` (this tree) as module paths: the run's pull step changes into
    `source`, so `flows` and `pipeline` import there without being installed.
    """
    from prefect import flow

    out, models = out.resolve(), (models or config.models_dir()).resolve()
    result = Deployed(pool, ensure_pool(pool))
    result.limits_created, result.limits_kept = ensure_limits([gpu_limit_name(i) for i in range(gpus)])
    for entrypoint, name, text in DEPLOYMENTS:
        # `apply` rather than `prefect.deploy`, which prints tables and reports a failed deployment
        # among several only on the console; there is no image to build for a process pool.
        runner = flow.from_source(source=str(source.resolve()), entrypoint=entrypoint).to_deployment(
            name=name, work_pool_name=pool, parameters={"out": str(out)}, tags=["testimony", "scale-out"],
            description=text, job_variables={"env": job_env(out, models)})
        result.deployments[f"{runner.flow_name}/{runner.name}"] = runner.apply()
    return result


def worker_commands(pool: str, gpus: int) -> list[str]:
    """What to run on each machine: one worker per GPU, pinned to it and to its limit."""
    if gpus == 0:
        return [f"prefect worker start --pool {pool} --limit 1"]
    return [f"{LIMIT_ENV}={gpu_limit_name(i)} CUDA_VISIBLE_DEVICES=<its index on that machine> "
            f"prefect worker start --pool {pool} --limit 1" for i in range(gpus)]


def main(pool: str, out: Path, *, models: Path | None = None, gpus: int = 0) -> int:
    """`testimony deploy`: set up the server, then say what to start where."""
    from prefect.settings import get_current_settings

    if config.source_checkout() is None:  # installed: REPO_ROOT is site-packages, not a tree to ship
        print("error: testimony deploy ships the flows as a source tree that every worker runs from the same "
              "path; an installed package has none: run it from a clone of the repository, placed at the same "
              "path on the shared storage of every machine", file=sys.stderr)
        return 2
    api = get_current_settings().api.url  # the variable, or the active Prefect profile
    if not api:
        print("error: no Prefect server named: set PREFECT_API_URL to the shared server, e.g. "
              "PREFECT_API_URL=http://prefect-host:4200/api testimony deploy --pool NAME", file=sys.stderr)
        return 2
    import httpx

    try:
        done = deploy_to_pool(pool, out, models=models, gpus=gpus)
    except httpx.HTTPError as exc:
        print(f"error: the Prefect server at {api} did not answer as expected ({exc}); is it running and "
              "reachable from this machine?", file=sys.stderr)
        return 1
    print(f"work pool {pool!r} {'created' if done.pool_created else 'already there'} on {api}")
    for name in done.limits_created:
        print(f"global concurrency limit {name!r} created (1 slot)")
    for name in done.limits_kept:
        print(f"global concurrency limit {name!r} already there, kept")
    for name, deployment_id in done.deployments.items():
        print(f"deployment {name} ({deployment_id})")
    print(f"\nArchive: {out.resolve()}\nThe inbox, archive, model store and this tree ({config.REPO_ROOT})\n"
          "must have these same paths on every machine. On each machine, with PREFECT_API_URL set:")
    for command in worker_commands(pool, gpus):
        print(f"  {command}")
    print("Then: prefect deployment run process-video/process-video -p video=/shared/inbox/v.mp4", flush=True)
    return 0
