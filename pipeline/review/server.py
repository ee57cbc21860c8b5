"""The review workspace: the archive page, the editor and the JSON API they use, on 127.0.0.1.

Every request needs the workspace's credentials (HTTP basic auth; `auth.credentials`). A request
that changes anything must also be JSON, carry the page's per-process token in `X-Testimony-Token`,
and, when the browser names an `Origin`, come from the workspace's own: another page open in the
same browser can neither read the token nor send that header without a preflight we never grant.
Only ids of the archive's bundles reach the file system; a path in a request never does.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from pipeline.archive import catalog, originals
from pipeline.archive.bundle import TRANSCRIPT, reviewed
from pipeline.review import auth, revisions, web
from pipeline.review.revisions import ReviewError
from pipeline.review.save import MAX_TEXT, ConflictError, save_revision
from pipeline.review.web import SECURITY_HEADERS, STATIC
from pipeline.transcript import read_json

ID = re.compile(r"[0-9a-f]{12}")
MAX_BODY = 32 * 1024 * 1024  # a 5-hour transcript with every field at its limit still fits


@dataclass(frozen=True)
class Workspace:
    archive: Path
    credentials: auth.Credentials
    token: str  # per process: the page carries it, state-changing requests must send it back
    origin: str  # scheme://host:port the page is served from


_error, _json = web.error, web.json_response


@dataclass(frozen=True)
class Opened:
    """A bundle a request named, with its transcript.json read once for the whole request."""

    path: Path
    data: dict[str, Any]

    @property
    def sha256(self) -> str:
        return self.data["source"]["sha256"]


def _bundle(ws: Workspace, key: str) -> Opened:
    """The bundle of an archive id; anything else is a 404 before a path is formed."""
    if not ID.fullmatch(key):
        raise LookupError(key)
    try:
        video = catalog.resolve(ws.archive, key)
    except catalog.CatalogError:
        raise LookupError(key) from None
    if video.bundle is None or not (ws.archive / video.bundle / TRANSCRIPT).is_file():
        raise LookupError(key)
    return _open(ws.archive / video.bundle)


def _open(bundle: Path) -> Opened:
    return Opened(bundle, read_json(bundle / TRANSCRIPT))


def _summary(opened: Opened) -> dict[str, Any]:
    data, segments = opened.data, opened.data["segments"]
    checked = sum(bool(s.get("checked")) for s in segments)
    flagged = sum(bool(s.get("flags")) for s in segments)
    return {"id": opened.sha256[:12], "file_name": data["source"]["file_name"],
            "language": data.get("language"), "duration": data["source"].get("duration"),
            "segments": len(segments), "flagged": flagged, "checked": checked,
            "speakers": len({s["speaker"] for s in segments if s.get("speaker")}),
            "state": catalog.review_state(len(segments), checked, reviewed(opened.path))}


def _row(video: catalog.Video) -> dict[str, Any]:
    """A bundle's line on the archive page, from its catalog row (no transcript is read)."""
    return {"id": video.id, "file_name": video.file_name, "language": video.language, "duration": video.duration,
            "segments": video.segments, "flagged": video.flagged, "checked": video.checked,
            "speakers": video.speakers, "state": video.review}


PAGE_DEFAULT, PAGE_MAX = 100, 1000
SORT_KEYS = {"state": "review"}  # the page's names for catalog columns, where they differ


def _page_query(request: Request) -> dict[str, Any]:
    """`?offset=&limit=&sort=&order=asc|desc&state=&q=`, checked; a ValueError says which is wrong."""
    q = request.query_params
    offset, limit = int(q.get("offset", 0)), int(q.get("limit", PAGE_DEFAULT))
    if offset < 0 or not 1 <= limit <= PAGE_MAX:
        raise ValueError(f"offset must be 0 or more and limit 1 to {PAGE_MAX}")
    sort = SORT_KEYS.get(q.get("sort", "file_name"), q.get("sort", "file_name"))
    state = q.get("state") or None
    if state is not None and state not in catalog.REVIEW_STATES:
        raise ValueError(f"state must be one of {', '.join(catalog.REVIEW_STATES)}")
    return {"offset": offset, "limit": limit, "sort": sort, "descending": q.get("order") == "desc",
            "review": state, "words": q.get("q", "")}


def _listing(ws: Workspace, query: dict[str, Any]) -> dict[str, Any]:
    """Blocking catalog work, run in a worker thread. The first page of a listing syncs the catalog
    first, so bundles copied into the archive by hand appear (a stat per bundle, no transcript read
    unless it changed); later pages come from the catalog alone."""
    if query["offset"] == 0:
        catalog.sync(ws.archive)
    videos, total = catalog.bundles_page(ws.archive, **query)
    return {"bundles": [_row(v) for v in videos], "total": total, "offset": query["offset"],
            "limit": query["limit"]}


async def list_bundles(ws: Workspace, request: Request) -> Response:
    """A page of the archive from the catalog's columns, off the event loop."""
    from starlette.concurrency import run_in_threadpool

    try:
        query = _page_query(request)
    except ValueError as exc:
        return _error(400, f"bad listing request: {exc}")
    try:
        return _json(await run_in_threadpool(_listing, ws, query))
    except catalog.CatalogError as exc:
        return _error(400, str(exc))


def get_bundle(ws: Workspace, request: Request) -> Response:
    opened = _bundle(ws, request.path_params["id"])
    chain = revisions.chain(opened.path)
    wanted = request.query_params.get("revision")
    chosen = chain[-1] if wanted is None else next((r for r in chain if r.sha256 == wanted), None)
    if chosen is None:
        return _error(404, "no such revision of this bundle")
    has_video = _original(ws, opened.sha256) is not None
    return _json({**_summary(opened), "revision": chosen.sha256, "number": chosen.number,
                  "newest": chain[-1].sha256, "segments": chosen.segments,
                  "video": f"/media/{opened.sha256[:12]}" if has_video else None})


def get_revisions(ws: Workspace, request: Request) -> Response:
    opened = _bundle(ws, request.path_params["id"])
    return _json({"revisions": [r.summary() for r in revisions.chain(opened.path)]})


async def post_revision(ws: Workspace, request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    body = await _json_body(request)
    opened = _bundle(ws, request.path_params["id"])
    if not isinstance(body, dict) or not isinstance(body.get("base"), str):
        return _error(400, "expected {\"base\": <revision>, \"author\": NAME, \"segments\": [...]}")
    try:
        saved = await run_in_threadpool(save_revision, ws.archive, opened.sha256, base=body["base"],
                                        author=body.get("author"), segments=body.get("segments"))
    except ConflictError as exc:
        return _error(409, str(exc), newest=exc.newest.sha256, number=exc.newest.number,
                      conflicts=exc.conflicts, segments=exc.merged)
    except ReviewError as exc:
        return _error(400, str(exc))
    status = 200 if saved.unchanged else 201
    return _json({"revision": saved.revision.sha256, "number": saved.revision.number, "merged": saved.merged,
                  "unchanged": saved.unchanged, "warnings": saved.warnings}, status)


async def post_translate(ws: Workspace, request: Request) -> Response:
    """The machine's English for an edited original, offered to the reviewer (never saved by itself)."""
    from starlette.concurrency import run_in_threadpool

    body = await _json_body(request)
    opened = _bundle(ws, request.path_params["id"])
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or len(body["text"]) > MAX_TEXT:
        return _error(400, "expected {\"text\": the original of one segment}")
    return _json(await run_in_threadpool(machine_english, opened.data.get("language"), body["text"]))


def machine_english(language: str | None, text: str) -> dict[str, Any]:
    from pipeline.run.steps import translate_segments

    if language in (None, "en"):
        return {"translation": None, "reason": "the original is English"}
    result = translate_segments(language, [text])
    if result.english is None:
        return {"translation": None, "reason": result.warning or "no translation package for this language"}
    return {"translation": result.english[0], "route": result.route}


async def get_document(ws: Workspace, request: Request) -> Response:
    """The testimony as a document (`?format=docx|csv|xlsx|ohms`), made from the newest revision."""
    from starlette.concurrency import run_in_threadpool

    from pipeline.archive import documents

    opened = _bundle(ws, request.path_params["id"])
    fmt = request.query_params.get("format", "")
    try:
        spec = documents.check_format(fmt)
    except documents.DocumentFormatError as exc:
        return _error(400, str(exc))
    data = await run_in_threadpool(documents.document, opened.path, fmt)
    name = documents.file_name(opened.sha256[:12], fmt)
    return Response(data, media_type=spec.media_type,
                    headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


def _original(ws: Workspace, sha256: str) -> Path | None:
    kept = originals.find_kept(ws.archive, sha256)
    return kept if kept is not None and kept.is_file() else None


def media(ws: Workspace, request: Request) -> Response:
    path = _original(ws, _bundle(ws, request.path_params["id"]).sha256)
    if path is None:
        return _error(404, "the archive keeps no copy of this video")
    return FileResponse(path, headers=SECURITY_HEADERS, media_type="video/mp4")


def page(ws: Workspace, _request: Request) -> Response:
    html = (STATIC / "workspace.html").read_text(encoding="utf-8").replace("{{TOKEN}}", ws.token)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


def static(_ws: Workspace, request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ("workspace.js", "workspace.css"):
        return _error(404, "not found")
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    return FileResponse(STATIC / name, media_type=kind, headers=SECURITY_HEADERS)


async def _json_body(request: Request) -> Any:
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


def _refusal(ws: Workspace, request: Request) -> Response | None:
    """Why this request is refused before it is handled, or None to let it through."""
    if not auth.matches(ws.credentials, request.headers.get("authorization")):
        return Response("credentials required\n", status_code=401, media_type="text/plain",
                        headers={**SECURITY_HEADERS, "WWW-Authenticate": 'Basic realm="testimony review"'})
    if request.method in ("GET", "HEAD"):
        return None
    origin = request.headers.get("origin")
    if origin is not None and origin != ws.origin:
        return _error(403, "this request came from another site's page")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error(415, "send JSON (Content-Type: application/json)")
    if not secrets.compare_digest(request.headers.get("x-testimony-token", ""), ws.token):
        return _error(403, "the page's token is missing or stale: reload the page")
    return None


def build_app(archive: Path, credentials: auth.Credentials, *, origin: str) -> Starlette:
    ws = Workspace(Path(archive), credentials, secrets.token_urlsafe(24), origin)

    def bound(handler):
        async def endpoint(request: Request) -> Response:
            if (refused := _refusal(ws, request)) is not None:
                return refused
            try:
                result = handler(ws, request)
                return await result if hasattr(result, "__await__") else result
            except LookupError:
                return _error(404, "no such bundle in this archive")
            except BodyError as exc:
                return _error(exc.status, exc.message)
        return endpoint

    routes = [("/", page, "GET"), ("/edit/{id}", page, "GET"), ("/static/{name}", static, "GET"),
              ("/api/bundles", list_bundles, "GET"), ("/api/bundles/{id}", get_bundle, "GET"),
              ("/api/bundles/{id}/revisions", get_revisions, "GET"),
              ("/api/bundles/{id}/revisions", post_revision, "POST"),
              ("/api/bundles/{id}/translate", post_translate, "POST"),
              ("/api/bundles/{id}/document", get_document, "GET"), ("/media/{id}", media, "GET")]
    return Starlette(routes=[Route(path, bound(handler), methods=[method]) for path, handler, method in routes])


def serve_workspace(archive: Path, *, host: str = "127.0.0.1", port: int = 4300,
                    stop: threading.Event | None = None) -> int:
    """Run the workspace until Ctrl-C, or until `stop` is set (serve runs it in a thread)."""
    import uvicorn

    from pipeline.archive.bundle import tidy_after_kill

    tidy_after_kill(archive)  # a save killed half way: its one whole bundle is put back before anyone reads
    credentials = auth.credentials_for(archive, host)
    origin = f"http://{host}:{port}"
    app = build_app(archive, credentials, origin=origin)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    print(f"testimony review: {origin}/  (user {credentials.user}; the password is in "
          f"{auth.credentials_file(archive)}, or TESTIMONY_AUTH)", flush=True)
    if stop is not None:
        def watch() -> None:
            stop.wait()
            server.should_exit = True
        threading.Thread(target=watch, name="review-stop", daemon=True).start()
    server.run()
    return 0
