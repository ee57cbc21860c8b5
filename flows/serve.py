"""`testimony serve`: a local Prefect server, our deployments, the watch folder, one command.

Everything binds to 127.0.0.1. Runs triggered from the UI form, by a dropped file, or by
`testimony run` against the same server all show in the UI. Ctrl-C stops the watcher, then the runs
loop, then the server, in that order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from pipeline import config
from pipeline.archive.viewer import use_review_port
from pipeline.review.auth import Exposure, service_credentials, service_file

from .server import Server, check_free, start_or_reuse


def _deployments(inbox: Path, out: Path) -> list[tuple]:
    """(flow, deployment) pairs; the trigger turns each inbox event into an `inbox` run."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from .adapt import adapt_language
    from .process_video import process_video_flow
    from .service_flows import process_folder, process_inbox_file, retranslate
    from .watch import ARRIVED

    dropped = DeploymentEventTrigger(
        name="file dropped into the inbox", expect={ARRIVED}, match={"prefect.resource.id": "testimony.inbox.*"},
        parameters={"video": "{{ event.payload.path }}", "inbox": str(inbox), "out": str(out)})
    deployments = [
        process_video_flow.to_deployment(
            name="process-video", parameters={"out": str(out)}, tags=["testimony"],
            description="Transcribe and translate one video: give its path; language and models are optional."),
        process_inbox_file.to_deployment(
            name="inbox", triggers=[dropped], parameters={"inbox": str(inbox), "out": str(out)},
            tags=["testimony", "inbox"], description="Started by the watch folder for each file dropped in."),
        process_folder.to_deployment(
            name="process-folder", parameters={"out": str(out)}, tags=["testimony"],
            description="Every video in a folder; bad files are reported and the rest go on."),
        retranslate.to_deployment(
            name="retranslate", parameters={"out": str(out)}, tags=["testimony"],
            description="Translate an archived transcript again, e.g. after importing a package."),
        adapt_language.to_deployment(
            name="adapt", parameters={"out": str(out)}, tags=["testimony"],
            description="Fine-tune a language's Whisper model on the segments reviewers checked."),
    ]
    flows = [process_video_flow, process_inbox_file, process_folder, retranslate, adapt_language]
    return list(zip(flows, deployments))


def serve(inbox: Path, out: Path, *, exposure: Exposure | None = None, port: int = 4200, settle_seconds: float = 2.0,
          review_port: int = 4300, ready: threading.Event | None = None, stop: threading.Event | None = None) -> int:
    """Run until Ctrl-C (or `stop` is set); returns the exit status. Prefect's server and UI stay on
    127.0.0.1 (they speak no TLS; admins reach them from this machine or through a tunnel); only the
    workspace follows `exposure` to another address."""
    config.apply_privacy_defaults()
    inbox, out = inbox.resolve(), out.resolve()
    began = time.monotonic()
    exposure = exposure or Exposure()
    exposure.check()  # an open address without TLS: refused before anything
    host = "127.0.0.1"
    config.private_dirs(out)  # owner-only before Prefect's home is made inside it
    credentials = service_credentials(out)  # Prefect's: the service's, known to admins, never to reviewers
    _clean_abandoned(out)
    if review_port:  # a busy port would only be logged by the workspace's thread, and serve run on without it
        check_free(exposure.host, review_port, "--review-port")
    server: Server = start_or_reuse(host, port, archive=out, auth_string=credentials.auth_string)
    # Before Prefect's settings are first read in this process: talk to this server, keep state beside it.
    os.environ["PREFECT_API_URL"] = server.api_url
    os.environ["PREFECT_API_AUTH_STRING"] = credentials.auth_string
    os.environ.setdefault("PREFECT_HOME", str(server.home))
    use_review_port(review_port)  # the viewer's and the artifacts' links follow --review-port
    if server.home.resolve().is_relative_to(out):  # started or proven this archive's (owner token)
        os.environ.setdefault("TESTIMONY_UI_TEXT", "1")  # its database is inside the archive: artifacts may name

    from .console import one_line_console
    from .executor import InProcessExecutor
    from .watch import InboxWatcher

    log_file = one_line_console(server.home)  # after Prefect set up its logging (importing it does)

    stop = stop or threading.Event()
    executor = watcher = None
    try:
        flows = {deployment.apply(): flow for flow, deployment in _deployments(inbox, out)}
        _put_back_taken(inbox)  # before any run: a resumed run then finds its file where it was dropped
        executor = InProcessExecutor(flows)
        if resumed := executor.recover():
            print(f"serve: resuming {len(resumed)} interrupted run(s): {', '.join(resumed)}", flush=True)
        executor.start()
        watcher = InboxWatcher(inbox, settle_seconds=settle_seconds)
        watcher.start()
        workspace = _start_workspace(out, exposure, review_port, stop) if review_port else None
        print(f"testimony serve: ready in {time.monotonic() - began:.1f} s "
              f"(server {'reused' if server.process is None else f'started in {server.startup_seconds:.1f} s'})\n"
              f"  Prefect UI: {server.ui_url}\n  review:     {workspace or 'off'}\n  inbox:      {inbox}\n"
              f"  archive:    {out}\n  log:        {log_file} (errors in full)\n"
              f"  Prefect UI credential (admins only): user {credentials.user}, password in "
              f"{service_file(out)} (or TESTIMONY_AUTH)\n"
              "  Ctrl-C stops everything.", flush=True)
        if ready:
            ready.set()
        _wait_for_stop(stop)
    finally:
        if watcher:
            watcher.stop()
        if executor:
            executor.stop()
        _flush_logs()
        server.stop()
        print("testimony serve: stopped", flush=True)
    return 0


def _put_back_taken(inbox: Path) -> None:
    """Files a stopped serve had taken from the inbox (`inbox/.taking/`) and not finished go back into
    it, where the watcher announces them again: never lost, and a finished one is found as such."""
    from .taking import recover

    if inbox.is_dir() and (back := recover(inbox)):
        print(f"serve: put {len(back)} file(s) a stopped run had taken back into the inbox", flush=True)


def _clean_abandoned(archive: Path) -> None:
    """Witness audio a failed run left and nobody came back to (a week untouched) goes at start."""
    from pipeline.run.cleanup import clean

    if removed := clean(archive):
        print(f"serve: removed {len(removed)} abandoned work folder(s) untouched for 7 days (logged in custody)",
              flush=True)


def _start_workspace(archive: Path, exposure: Exposure, port: int, stop: threading.Event) -> str:
    """The review workspace in a thread of this process; it stops when serve does. Its first start
    (accounts made or converted) happens here, before the thread, so it is announced before `ready`."""
    from pipeline.review.accounts import first_start
    from pipeline.review.server import serve_workspace

    first_start(archive, announce=lambda line: print(line, flush=True))
    threading.Thread(target=serve_workspace, args=(archive,), kwargs={"exposure": exposure, "port": port,
                     "stop": stop}, name="review-workspace", daemon=True).start()
    return f"{exposure.scheme}://{exposure.host}:{port}/"


def _flush_logs() -> None:
    """Send buffered run logs and events while the server is still there to take them; otherwise
    Prefect's senders keep retrying a stopped server and the process never exits."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        try:
            service.drain_all(timeout=10)
        except Exception:  # nothing buffered, or the server already gone: nothing more to save
            pass


def _wait_for_stop(stop: threading.Event) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
