"""`testimony quality` in the workspace: the same figures as JSON (`GET /api/quality`) for its page.

Who may see what follows the roles: an admin sees every language; a reviewer only their own (the
scoring itself skips the rest, so no recording, speaker or correction of another language is read
out); a reader, who sees approved transcripts only, gets a 403, since the figures come from drafts and
checks. Scoring reads every revision chain, so it runs in a worker thread, off the event loop. Each
look goes to the access log as a `view` of the page.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.review.gate import Forbidden, trail
from pipeline.review.web import error, json_response

if TYPE_CHECKING:
    from pipeline.review.accounts import Account
    from pipeline.review.site import Workspace

LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _query(request: Request) -> tuple[str | None, str | None]:
    """`?language=L&since=YYYY-MM-DD`, checked; a ValueError says which is wrong."""
    language = request.query_params.get("language") or None
    since = request.query_params.get("since") or None
    if language is not None and not LANGUAGE.fullmatch(language):
        raise ValueError("language must be a language code such as kk")
    if since is not None and not DATE.fullmatch(since):
        raise ValueError("since must be a date, YYYY-MM-DD")
    return language, since


def allowed_languages(account: Account, language: str | None) -> tuple[str, ...] | None:
    """The languages this person may see figures of (None: all); a 403 for a reader, or for a
    reviewer asking for a language outside theirs."""
    if account.role == "admin":
        return None
    if account.role != "reviewer":
        raise Forbidden("your role does not allow you to see the quality figures")
    if language is not None and language not in account.languages:
        raise Forbidden("your role does not allow you to see this language's quality figures")
    return tuple(account.languages)


def _figures(ws: Workspace, language: str | None, since: str | None,
             languages: tuple[str, ...] | None) -> dict[str, Any]:
    """The CLI's summary, plus the languages the page may offer in its filter."""
    from pipeline.archive import catalog
    from pipeline.evaluation import quality

    data = quality.summary(quality.collect(ws.archive, language=language, since=since, languages=languages))
    offered = languages if languages is not None else sorted(
        {v.language for v in catalog.list_videos(ws.archive) if v.language})
    return {**data, "languages": list(offered), "language": language, "since": since}


async def get_quality(ws: Workspace, request: Request) -> Response:
    """The quality figures a signed-in admin or reviewer may see; 503 without the scorers."""
    from pipeline.evaluation.extra import missing_scorers_hint

    account = request.state.account
    try:
        language, since = _query(request)
    except ValueError as exc:
        return error(400, f"bad quality request: {exc}")
    languages = allowed_languages(account, language)
    if (hint := missing_scorers_hint("quality")) is not None:
        return error(503, hint)
    trail(ws.archive, account.name, "view", page="quality", **({"language": language} if language else {}),
          **({"since": since} if since else {}))
    return json_response(await run_in_threadpool(_figures, ws, language, since, languages))


def page(ws: Workspace, _request: Request) -> Response:
    """The page itself holds no figures (its script asks the API), so anyone signed in may load it;
    a reader's page shows the API's refusal."""
    from pipeline.review import signin

    return signin.page(ws, "quality.html")
