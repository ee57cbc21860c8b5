"""What every answer of the workspace shares: its security headers and its JSON shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_BODY = 32 * 1024 * 1024  # a 5-hour transcript with every field at its limit still fits
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=SECURITY_HEADERS)


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=SECURITY_HEADERS)


async def json_body(request: Request) -> Any:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise BodyError(413, "the request body is too large")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BodyError(413, "the request body is too large")
    try:
        return json.loads(raw)
    except ValueError:
        raise BodyError(400, "the request body is not valid JSON") from None


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
