"""Runs our deployments' flow runs inside the `serve` process, one at a time, so models stay loaded.

Prefect's own runner starts a fresh process per flow run, which would load Whisper and the translation
models again for every video. This loop does what its poller does (find scheduled runs of our
deployments, claim each with a Pending state, which the server grants to exactly one claimant) and then
runs the flow in this process, where the model caches live.

Prefect's flow-run heartbeats are off for these runs: they exist so a server can notice a worker that
died, which `recover` already handles here, and their thread costs up to a second at the end of every
run (it sleeps in one-second steps and is joined).

A run this process never finished (serve killed, the machine restarted) is still Running, Pending or
Crashed on the server when serve starts again: `recover` schedules it once more, and the pipeline's
checkpoints make the new attempt resume where the old one stopped.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.flow_engine import run_flow
from prefect.flows import Flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Crashed, Pending, Scheduled

PAGE = 200
MAX_ATTEMPTS = 3  # a run that keeps killing serve (say, out of memory) is left Crashed after this many


class InProcessExecutor:
    def __init__(self, flows: dict[UUID, Flow], *, poll_seconds: float = 1.0) -> None:
        self.flows = flows  # deployment id -> the flow it runs
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flow-runs", daemon=True)
        self.current: str | None = None

    def start(self) -> None:
        self._thread.start()

    def recover(self) -> list[str]:
        """Schedule again the runs of our deployments that a previous serve left unfinished; their names.

        Call before `start`: at that moment no run of these deployments can be in progress anywhere,
        since only a serve process executes them.
        """
        unfinished = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=list(self.flows)),
            state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.RUNNING, StateType.PENDING, StateType.CRASHED])))
        resumed = []
        with get_client(sync_client=True) as client:
            unfinished_runs, page = [], None
            while page is None or len(page) == PAGE:  # the server answers at most 200 per request
                page = client.read_flow_runs(flow_run_filter=unfinished, limit=PAGE, offset=len(unfinished_runs))
                unfinished_runs += page
            self._close_orphaned_subflows(client, [run.id for run in unfinished_runs])
            for run in unfinished_runs:
                if run.run_count >= MAX_ATTEMPTS:
                    print(f"serve: run {run.name} was interrupted {run.run_count} times; marked crashed, not "
                          "resumed (its file is still in the inbox)", flush=True)
                    if run.state_type != StateType.CRASHED:
                        client.set_flow_run_state(run.id, Crashed(message=f"interrupted {run.run_count} times; "
                                                                  "not resumed again"), force=True)
                    continue
                state = Scheduled(name="Resuming", message="interrupted when serve stopped; resumes from "
                                  "the pipeline's checkpoints")
                client.set_flow_run_state(run.id, state, force=True)
                resumed.append(run.name)
        return resumed

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming runs; a run in progress is left to finish or be marked crashed by the server."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=timeout)

    @staticmethod
    def _close_orphaned_subflows(client, parents: list[UUID]) -> None:
        """The subflow (process-video) a killed run was inside stays Running forever: mark it Crashed.
        The resumed parent starts a fresh one."""
        if not parents:
            return
        children = FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=parents),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])))
        closed: set[UUID] = set()
        while page := [c for c in client.read_flow_runs(flow_run_filter=children, limit=PAGE) if c.id not in closed]:
            for child in page:  # once Crashed, a child drops out of the filter: the loop ends
                client.set_flow_run_state(child.id, Crashed(message="serve stopped while this ran; its parent "
                                                            "run was scheduled again"), force=True)
                closed.add(child.id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self._run_next()
            except Exception as exc:  # the server restarting, a network blip on loopback
                print(f"serve: could not fetch flow runs ({type(exc).__name__}: {exc}); retrying", flush=True)
                ran = False
            if not ran:
                self._stop.wait(self.poll_seconds)

    def _run_next(self) -> bool:
        with get_client(sync_client=True) as client:
            runs = client.get_scheduled_flow_runs_for_deployments(
                list(self.flows), scheduled_before=datetime.now(timezone.utc))
            for flow_run in sorted(runs, key=lambda r: r.next_scheduled_start_time or r.created):
                if client.set_flow_run_state(flow_run.id, Pending()).status != SetStateStatus.ACCEPT:
                    continue  # another worker claimed it
                break
            else:
                return False
        flow = self.flows[flow_run.deployment_id]
        self.current = flow_run.name
        try:
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                run_flow(flow, flow_run=flow_run, parameters=dict(flow_run.parameters or {}), return_type="state")
        except BaseException as exc:  # the run's state already records the failure
            print(f"serve: run {flow_run.name} ended with {type(exc).__name__}: {exc}", flush=True)
        finally:
            self.current = None
        return True
