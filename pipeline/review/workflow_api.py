"""The review workflow over HTTP: a bundle's state and its moves, the queues, progress in hours.

The person is the signed-in account (`gate`), never a name in the body; `workflow` decides what that
person may do and answers 403 or 409 with a message that names no file. Every move goes to the access
log as well as to the bundle's custody log (where `workflow` records it).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.review import workflow
from pipeline.review.gate import Forbidden, trail
from pipeline.review.web import error, json_body, json_response

if TYPE_CHECKING:
    from pipeline.review.site import Workspace

MOVES = {"claim": workflow.claim, "release": workflow.release, "check": workflow.check, "approve": workflow.approve}


def status_json(status: workflow.Status) -> dict[str, Any]:
    return {**asdict(status), "words": workflow.describe(status)}


def _move(ws: Workspace, sha256: str, account, body: dict[str, Any]) -> workflow.Status:
    action = body.get("action")
    if action == "assign":
        return workflow.assign(ws.archive, sha256, str(body.get("to", "")), account)
    if action not in MOVES:
        raise ValueError(f"action must be one of {', '.join([*MOVES, 'assign'])}")
    return MOVES[action](ws.archive, sha256, account)


async def post_state(ws: Workspace, request: Request) -> Response:
    """Claim, release, check, approve or (admins) assign the bundle; answers its new status."""
    from pipeline.review.site import bundle_of

    body, account = await json_body(request), request.state.account
    opened = bundle_of(ws, request.path_params["id"])
    if not isinstance(body, dict):
        return error(400, "expected {\"action\": claim|release|check|approve|assign, \"to\": NAME for assign}")
    try:
        status = await run_in_threadpool(_move, ws, opened.sha256, account, body)
    except ValueError as exc:
        return error(400, str(exc))
    except workflow.WorkflowError as exc:
        return error(exc.status, str(exc))
    trail(ws.archive, account.name, "state", opened.sha256[:12], move=body["action"], to=status.state)
    return json_response(status_json(status))


def get_queue(ws: Workspace, request: Request) -> Response:
    """One language's drafts nobody holds, oldest first: for its reviewers and admins."""
    account, language = request.state.account, request.query_params.get("language", "")
    if not (account.role == "admin" or (account.role == "reviewer" and language in account.languages)):
        raise Forbidden("your role does not allow you to see this language's queue")
    return json_response({"language": language, "drafts": [
        {"id": q.id, "file_name": q.file_name, "duration": q.duration, "created": q.created}
        for q in workflow.queue(ws.archive, language)]})


def get_progress(ws: Workspace, request: Request) -> Response:
    """Hours of speech in each state, per language: what the archive page's progress table shows
    (reviewers and admins: a reader is told nothing about drafts)."""
    if request.state.account.role == "reader":
        raise Forbidden("your role does not allow you to see the review's progress")
    return json_response({"states": list(workflow.STATES), "languages": workflow.progress(ws.archive)})
