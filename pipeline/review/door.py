"""The door every workspace request passes: a change must be JSON from our own page with its token,
then the asker is signed in (cookie or basic auth), sent to sign in, or refused; a handler's own
refusals (403, 404, a bad body) become JSON answers here, in one place."""

from __future__ import annotations

import inspect
import secrets
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pipeline.review import sessions, signin
from pipeline.review.accounts import SignInRefused
from pipeline.review.gate import Forbidden, trail
from pipeline.review.web import SECURITY_HEADERS, BodyError, error

if TYPE_CHECKING:
    from pipeline.review.site import Workspace


def refusal(ws: Workspace, request: Request) -> Response | None:
    """Why a request that changes something is refused before anyone is asked who they are."""
    if request.method in ("GET", "HEAD"):
        return None
    origin = request.headers.get("origin")
    if origin is not None and origin != ws.origin and origin not in ws.also:
        return error(403, "this request came from another site's page")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return error(415, "send JSON (Content-Type: application/json)")
    if not secrets.compare_digest(request.headers.get("x-testimony-token", ""), ws.token):
        return error(403, "the page's token is missing or stale: reload the page")
    return None


CHALLENGE = {"WWW-Authenticate": 'Basic realm="testimony review"'}


def _from_a_browser(request: Request) -> bool:
    """A browser names the kind of fetch (`Sec-Fetch-Mode`) and may carry our cookie; a script does neither."""
    return sessions.COOKIE in request.cookies or "sec-fetch-mode" in request.headers


def _unsigned(request: Request) -> Response:
    """Nobody signed in: a page sends the browser to the sign-in page; the API answers 401, with a
    basic-auth challenge for scripts only (a browser would open its own password dialog instead of
    going to the sign-in page)."""
    if request.method == "GET" and (request.url.path in ("/", "/quality") or request.url.path.startswith("/edit/")):
        return RedirectResponse("/signin", status_code=303, headers=SECURITY_HEADERS)
    challenge = {} if _from_a_browser(request) else CHALLENGE
    return JSONResponse({"error": "sign in first"}, status_code=401, headers={**SECURITY_HEADERS, **challenge})


async def _signed_in(ws: Workspace, request: Request, before_change: bool) -> Response | None:
    """Puts the asker on the request, or answers for them: not signed in, refused, or a one-time
    password that must be changed before anything else."""
    from starlette.concurrency import run_in_threadpool

    try:
        account = await run_in_threadpool(ws.gate.who, request)
    except SignInRefused as exc:
        trail(ws.archive, "-", "sign-in-refused", via="basic auth", reason=str(exc))
        return signin.refused(exc, {**SECURITY_HEADERS, **({} if _from_a_browser(request) else CHALLENGE)})
    if account is None:
        return _unsigned(request)
    if account.must_change and not before_change:
        return error(403, "change your one-time password first (sign in on the workspace's page)")
    request.state.account = account
    return None


def endpoint(ws: Workspace, handler, *, public: bool = False, before_change: bool = False):
    """The handler behind the door: refused, signed in or sent to sign in, and its errors as JSON.
    `public`: nobody needs to be signed in (the sign-in page and its script); `before_change`: a
    one-time password opens it (the page, who am I, the change itself, sign-out)."""
    async def guarded(request: Request) -> Response:
        if (refused := refusal(ws, request)) is not None:
            return refused
        try:
            if not public and (answer := await _signed_in(ws, request, before_change)) is not None:
                return answer
            return await _answer(handler, ws, request)
        except Forbidden as exc:
            return error(403, exc.message)
        except LookupError:
            return error(404, "no such bundle in this archive")
        except BodyError as exc:
            return error(exc.status, exc.message)
    return guarded


async def _answer(handler, ws: Workspace, request: Request) -> Response:
    """A coroutine handler runs on the event loop; a plain one (it reads bundles, revisions, the catalog
    or a video from disk, under their locks) runs in the thread pool, so one slow read, or one waiting
    on a save's lock, never holds up every other person's request."""
    from starlette.concurrency import run_in_threadpool

    if inspect.iscoroutinefunction(handler):
        return await handler(ws, request)
    result = await run_in_threadpool(handler, ws, request)
    return await result if inspect.isawaitable(result) else result
