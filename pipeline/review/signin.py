"""The sign-in page and its JSON: sign in, sign out, change one's password, say who is signed in.

Signing in goes through `accounts.authenticate` (the growing wait and the lock live there) and starts a
session whose token only the cookie holds. A one-time password (a new account, a reset) opens nothing
but the change-password form until the person has chosen their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from pipeline.review import accounts, sessions
from pipeline.review.accounts import Account, AccountError, SignInRefused
from pipeline.review.gate import trail
from pipeline.review.web import SECURITY_HEADERS, STATIC

if TYPE_CHECKING:
    from pipeline.review.site import Workspace


def me(account: Account) -> dict[str, Any]:
    """What the page may know about the person signed in (never a hash, never a count of failures)."""
    return {"name": account.name, "role": account.role, "languages": list(account.languages),
            "must_change": account.must_change}


def refused(exc: SignInRefused, headers: dict[str, str]) -> JSONResponse:
    """401 with the reason; a wait that helps is a 429 with Retry-After."""
    if exc.retry_after > 0:
        return JSONResponse({"error": str(exc), "retry_after": round(exc.retry_after)}, status_code=429,
                            headers={**headers, "Retry-After": str(max(1, round(exc.retry_after)))})
    return JSONResponse({"error": str(exc)}, status_code=401, headers=headers)


def _fields(body: Any, *names: str) -> list[str] | None:
    if not isinstance(body, dict) or not all(isinstance(body.get(n), str) and body[n] for n in names):
        return None
    return [body[n] for n in names]


async def sign_in(ws: Workspace, request: Request, body: Any) -> Response:
    fields = _fields(body, "name", "password")
    if fields is None:
        return JSONResponse({"error": "expected {\"name\": ..., \"password\": ...}"}, 400, headers=SECURITY_HEADERS)
    try:
        account = await run_in_threadpool(accounts.authenticate, ws.archive, *fields)
    except SignInRefused as exc:
        tried = fields[0] if accounts.get(ws.archive, fields[0]) is not None else "-"  # never a mistyped password
        trail(ws.archive, tried, "sign-in-refused", reason=str(exc))
        return refused(exc, SECURITY_HEADERS)
    trail(ws.archive, account.name, "sign-in")
    return _signed_in(ws, account)


def _signed_in(ws: Workspace, account: Account) -> Response:
    token = sessions.start(ws.archive, account.name)
    return JSONResponse(me(account), headers={**SECURITY_HEADERS, "Set-Cookie": ws.gate.cookie(token, None)})


def sign_out(ws: Workspace, request: Request, account: Account) -> Response:
    sessions.end(ws.archive, request.cookies.get(sessions.COOKIE))
    trail(ws.archive, account.name, "sign-out")
    return JSONResponse({"signed_out": account.name},
                        headers={**SECURITY_HEADERS, "Set-Cookie": ws.gate.cookie("", 0)})


async def change_password(ws: Workspace, request: Request, account: Account, body: Any) -> Response:
    """The person's own new password, given with the current one; every other session of theirs ends."""
    fields = _fields(body, "password", "new")
    if fields is None:
        return JSONResponse({"error": "expected {\"password\": current, \"new\": the new password}"}, 400,
                            headers=SECURITY_HEADERS)
    try:
        await run_in_threadpool(accounts.authenticate, ws.archive, account.name, fields[0])
        accounts.set_password(ws.archive, account.name, fields[1])
    except SignInRefused as exc:
        return refused(exc, SECURITY_HEADERS)
    except AccountError as exc:
        return JSONResponse({"error": str(exc)}, 400, headers=SECURITY_HEADERS)
    trail(ws.archive, account.name, "password")
    return _signed_in(ws, accounts.get(ws.archive, account.name))


def page(ws: Workspace, name: str) -> Response:
    html = (STATIC / name).read_text(encoding="utf-8").replace("{{TOKEN}}", ws.token)
    return HTMLResponse(html, headers=SECURITY_HEADERS)
