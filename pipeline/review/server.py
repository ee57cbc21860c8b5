"""The review workspace: the archive page, the editor and the JSON API they use, on 127.0.0.1.

Every request but the sign-in page's needs a person: a session cookie from signing in, or that person's
own name and password as HTTP basic auth (`gate`); what their role allows is checked per bundle, and a
refusal is a 403 that changes nothing and names no file. A request that changes anything must also be
JSON, carry the page's per-process token in `X-Testimony-Token`, and, when the browser names an
`Origin`, come from the workspace's own: another page open in the same browser can neither read the
token nor send that header without a preflight we never grant. Only ids of the archive's bundles reach
the file system; a path in a request never does. Who saw and changed what goes to the access log.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from pipeline.archive import catalog, originals
from pipeline.archive.bundle import reviewed
from pipeline.review import auth, door, quality_api, revisions, signin, web, workflow_api
from pipeline.review.accounts import Account
from pipeline.review.gate import Gate, may_play, may_read, need, trail
from pipeline.review.revisions import ReviewError
from pipeline.review.save import MAX_TEXT, ConflictError, save_revision
from pipeline.review.site import Opened, Workspace, bundle_of
from pipeline.review.web import SECURITY_HEADERS, STATIC, json_body

_error, _json = web.error, web.json_response


def _account(request: Request) -> Account:
    return request.state.account


def _approved(ws: Workspace, sha256: str) -> bool:
    from pipeline.review import workflow

    return workflow.state(ws.archive, sha256).state == workflow.APPROVED


def _readable(ws: Workspace, request: Request) -> Opened:
    """The bundle a request names, when the asker's role may read it (a 403 otherwise)."""
    opened, account = bundle_of(ws, request.path_params["id"]), _account(request)
    language = opened.data.get("language")
    need(may_read(account, language, account.role == "reader" and _approved(ws, opened.sha256)),
         "read this transcript")
    return opened


def _editable(ws: Workspace, request: Request) -> Opened:
    opened = bundle_of(ws, request.path_params["id"])
    need(_account(request).can_edit(opened.data.get("language")), "change this transcript")
    return opened


def _summary(opened: Opened) -> dict[str, Any]:
    data, segments = opened.data, opened.data["segments"]
    checked = sum(bool(s.get("checked")) for s in segments)
    flagged = sum(bool(s.get("flags")) for s in segments)
    return {"id": opened.sha256[:12], "file_name": data["source"]["file_name"],
            "language": data.get("language"), "duration": data["source"].get("duration"),
            "segments": len(segments), "flagged": flagged, "checked": checked,
            "speakers": len({s["speaker"] for s in segments if s.get("speaker")}),
            "state": catalog.review_state(len(segments), checked, reviewed(opened.path))}


def _row(video: catalog.Video, moved: dict[str, Any]) -> dict[str, Any]:
    """A bundle's line on the archive page, from its catalog row and the workflow's index (no
    transcript is read)."""
    flow = moved.get(video.sha256)
    return {"id": video.id, "file_name": video.file_name, "language": video.language, "duration": video.duration,
            "segments": video.segments, "flagged": video.flagged, "checked": video.checked,
            "speakers": video.speakers, "state": video.review, "workflow": flow.state if flow else "draft",
            "holder": flow.holder if flow else None}


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


def _visible(ws: Workspace, account: Account) -> dict[str, Any]:
    """The part of the archive a role may list: all, a reviewer's languages, or approved bundles."""
    if account.role == "admin":
        return {}
    if account.role == "reviewer":
        return {"languages": account.languages}
    from pipeline.review import workflow

    return {"only": workflow.approved(ws.archive)}


def _listing(ws: Workspace, query: dict[str, Any]) -> dict[str, Any]:
    """Blocking catalog work, run in a worker thread. The first page of a listing syncs the catalog
    first, so bundles copied into the archive by hand appear (a stat per bundle, no transcript read
    unless it changed); later pages come from the catalog alone."""
    if query["offset"] == 0:
        catalog.sync(ws.archive)
    from pipeline.review.workflow_record import states

    videos, total = catalog.bundles_page(ws.archive, **query)
    moved = states(ws.archive)
    return {"bundles": [_row(v, moved) for v in videos], "total": total, "offset": query["offset"],
            "limit": query["limit"]}


async def list_bundles(ws: Workspace, request: Request) -> Response:
    """A page of the archive from the catalog's columns, off the event loop."""
    from starlette.concurrency import run_in_threadpool

    try:
        query = _page_query(request)
    except ValueError as exc:
        return _error(400, f"bad listing request: {exc}")
    query.update(_visible(ws, _account(request)))
    if query["words"].strip():
        trail(ws.archive, _account(request).name, "search", words=query["words"][:200])
    try:
        return _json(await run_in_threadpool(_listing, ws, query))
    except catalog.CatalogError as exc:
        return _error(400, str(exc))


def get_bundle(ws: Workspace, request: Request) -> Response:
    opened = _readable(ws, request)
    chain = revisions.chain(opened.path)
    wanted = request.query_params.get("revision")
    need(_account(request).role != "reader" or wanted is None,
         "read earlier revisions (a reader reads the approved text)")
    chosen = chain[-1] if wanted is None else next((r for r in chain if r.sha256 == wanted), None)
    if chosen is None:
        return _error(404, "no such revision of this bundle")
    account = _account(request)
    has_video = may_play(account, opened.data.get("language")) and _original(ws, opened.sha256) is not None
    trail(ws.archive, account.name, "view", opened.sha256[:12], revision=chosen.number)
    from pipeline.review import workflow

    return _json({**_summary(opened), "revision": chosen.sha256, "number": chosen.number,
                  "workflow": workflow_api.status_json(workflow.state(ws.archive, opened.sha256)),
                  "newest": chain[-1].sha256, "segments": _shown_segments(account, chosen.segments),
                  "video": f"/media/{opened.sha256[:12]}" if has_video else None})


# What a reader's answer carries of a segment: the approved text and what shows it, nothing else (an
# allow-list, so a field added to segments later, like the words a machine cut off as a loop, stays out).
READER_SEGMENT_FIELDS = ("id", "start", "end", "text", "translation", "speaker", "words", "checked", "flags",
                         "english_source")


def _shown_segments(account: Account, segments: list[dict]) -> list[dict]:
    """The segments as the asker may see them: a reader reads the approved text only, never the words a
    machine cut off as a loop (`cut`), which no reviewer approved."""
    if account.role != "reader":
        return segments
    return [{k: s[k] for k in READER_SEGMENT_FIELDS if k in s} for s in segments]


def get_revisions(ws: Workspace, request: Request) -> Response:
    opened = _readable(ws, request)
    need(_account(request).role != "reader", "read the history of revisions (a reader reads the approved text)")
    return _json({"revisions": [r.summary() for r in revisions.chain(opened.path)]})


async def post_revision(ws: Workspace, request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    body = await json_body(request)
    opened, author = _editable(ws, request), _account(request).name  # whatever name the body gives
    if not isinstance(body, dict) or not isinstance(body.get("base"), str):
        return _error(400, "expected {\"base\": <revision>, \"segments\": [...]}")
    try:
        saved = await run_in_threadpool(save_revision, ws.archive, opened.sha256, base=body["base"],
                                        author=author, segments=body.get("segments"))
    except ConflictError as exc:
        return _error(409, str(exc), newest=exc.newest.sha256, number=exc.newest.number,
                      conflicts=exc.conflicts, segments=exc.merged)
    except ReviewError as exc:
        return _error(400, str(exc))
    status = 200 if saved.unchanged else 201
    if not saved.unchanged:
        from pipeline.review import workflow

        trail(ws.archive, author, "save", opened.sha256[:12], revision=saved.revision.number)
        try:
            await run_in_threadpool(workflow.after_save, ws.archive, opened.sha256, _account(request))
        except workflow.WorkflowError as exc:  # the revision is saved: say so, and why the state did not move
            saved.warnings.append(f"saved, but the review state did not change: {exc}")
    return _json({"revision": saved.revision.sha256, "number": saved.revision.number, "merged": saved.merged,
                  "unchanged": saved.unchanged, "warnings": saved.warnings}, status)


async def post_translate(ws: Workspace, request: Request) -> Response:
    """The machine's English for an edited original, offered to the reviewer (never saved by itself)."""
    from starlette.concurrency import run_in_threadpool

    body = await json_body(request)
    opened = _editable(ws, request)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or len(body["text"]) > MAX_TEXT:
        return _error(400, "expected {\"text\": the original of one segment}")
    spellings = (opened.data.get("glossary") or {}).get("english")  # the run's `NAME = English` lines
    return _json(await run_in_threadpool(machine_english, opened.data.get("language"), body["text"], spellings))


def machine_english(language: str | None, text: str, spellings: dict[str, str] | None = None) -> dict[str, Any]:
    from pipeline.run.steps import translate_segments

    if language in (None, "en"):
        return {"translation": None, "reason": "the original is English"}
    result = translate_segments(language, [text], spellings=spellings or None)
    if result.english is None:
        return {"translation": None, "reason": result.warning or "no translation package for this language"}
    return {"translation": result.english[0], "route": result.route}


async def get_document(ws: Workspace, request: Request) -> Response:
    """The testimony as a document (`?format=docx|csv|xlsx|ohms`), made from the newest revision."""
    from starlette.concurrency import run_in_threadpool

    from pipeline.archive import documents

    opened = _readable(ws, request)
    fmt = request.query_params.get("format", "")
    try:
        spec = documents.check_format(fmt)
    except documents.DocumentFormatError as exc:
        return _error(400, str(exc))
    data = await run_in_threadpool(documents.document, opened.path, fmt)
    name = documents.file_name(opened.sha256[:12], fmt)
    trail(ws.archive, _account(request).name, "download", opened.sha256[:12], format=fmt)
    return Response(data, media_type=spec.media_type,
                    headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


def _original(ws: Workspace, sha256: str) -> Path | None:
    kept = originals.find_kept(ws.archive, sha256)
    return kept if kept is not None and kept.is_file() else None


def media(ws: Workspace, request: Request) -> Response:
    opened = bundle_of(ws, request.path_params["id"])
    need(may_play(_account(request), opened.data.get("language")), "play the original video")
    path = _original(ws, opened.sha256)
    if path is None:
        return _error(404, "the archive keeps no copy of this video")
    if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):  # a play starts; its seeks are not new
        trail(ws.archive, _account(request).name, "play", opened.sha256[:12])
    return FileResponse(path, headers=SECURITY_HEADERS, media_type="video/mp4")


def page(ws: Workspace, _request: Request) -> Response:
    return signin.page(ws, "workspace.html")


def signin_page(ws: Workspace, _request: Request) -> Response:
    return signin.page(ws, "signin.html")


def whoami(_ws: Workspace, request: Request) -> Response:
    return _json(signin.me(_account(request)))


async def sign_in(ws: Workspace, request: Request) -> Response:
    return await signin.sign_in(ws, request, await json_body(request))


def sign_out(ws: Workspace, request: Request) -> Response:
    return signin.sign_out(ws, request, _account(request))


async def change_password(ws: Workspace, request: Request) -> Response:
    return await signin.change_password(ws, request, _account(request), await json_body(request))


def static(_ws: Workspace, request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ("workspace.js", "cuts.js", "conflicts.js", "workspace.css", "signin.js", "quality.js"):
        return _error(404, "not found")
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    return FileResponse(STATIC / name, media_type=kind, headers=SECURITY_HEADERS)


PUBLIC = (signin_page, static, sign_in)  # the handlers nobody needs to be signed in for
BEFORE_CHANGE = (page, whoami, change_password, sign_out)  # all a one-time password opens
ROUTES = [("/", page, "GET"), ("/edit/{id}", page, "GET"), ("/static/{name}", static, "GET"),
          ("/signin", signin_page, "GET"), ("/api/session", sign_in, "POST"), ("/api/session", sign_out, "DELETE"),
          ("/api/me", whoami, "GET"), ("/api/password", change_password, "POST"),
          ("/api/bundles", list_bundles, "GET"), ("/api/bundles/{id}", get_bundle, "GET"),
          ("/api/bundles/{id}/revisions", get_revisions, "GET"),
          ("/api/bundles/{id}/revisions", post_revision, "POST"),
          ("/api/bundles/{id}/translate", post_translate, "POST"),
          ("/api/bundles/{id}/document", get_document, "GET"), ("/media/{id}", media, "GET"),
          ("/api/bundles/{id}/state", workflow_api.post_state, "POST"), ("/api/queue", workflow_api.get_queue, "GET"),
          ("/api/progress", workflow_api.get_progress, "GET"), ("/quality", quality_api.page, "GET"),
          ("/api/quality", quality_api.get_quality, "GET")]


def build_app(archive: Path, *, origin: str, secure: bool = False, also: tuple[str, ...] = ()) -> Starlette:
    ws = Workspace(Path(archive), Gate(Path(archive), secure), secrets.token_urlsafe(24), origin, frozenset(also))
    return Starlette(routes=[Route(path, door.endpoint(ws, handler, public=handler in PUBLIC,
                                                       before_change=handler in BEFORE_CHANGE), methods=[method])
                             for path, handler, method in ROUTES])


def serve_workspace(archive: Path, *, exposure: auth.Exposure | None = None, port: int = 4300,
                    stop: threading.Event | None = None) -> int:
    """Run the workspace until Ctrl-C, or until `stop` is set (serve runs it in a thread)."""
    import uvicorn

    from pipeline.archive.bundle import tidy_after_kill
    from pipeline.review.accounts import first_start

    exposure = exposure or auth.Exposure()
    exposure.check()
    tidy_after_kill(archive)  # a save killed half way: its one whole bundle is put back before anyone reads
    first_start(archive, announce=print)
    origin, *also = exposure.origins(port)
    app = build_app(archive, origin=origin, secure=exposure.secure_cookies, also=tuple(also))
    tls = {"ssl_certfile": str(exposure.tls_cert), "ssl_keyfile": str(exposure.tls_key)} if exposure.tls else {}
    server = uvicorn.Server(uvicorn.Config(app, host=exposure.host, port=port, log_level="warning",
                                           access_log=False, **tls))
    print(f"testimony review: {origin}/  (people sign in with their accounts: `testimony users`)", flush=True)
    if exposure.insecure_http and exposure.host not in auth.LOOPBACK:
        print(f"warning: plain HTTP on {exposure.host} (--insecure-http): passwords, cookies and testimony cross "
              "the network unencrypted", flush=True)
    if stop is not None:
        def watch() -> None:
            stop.wait()
            server.should_exit = True
        threading.Thread(target=watch, name="review-stop", daemon=True).start()
    server.run()
    return 0
