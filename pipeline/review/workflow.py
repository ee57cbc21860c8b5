"""The review workflow: a machine draft becomes a record only after two people have seen it.

States: `draft` (the machine's, nobody holds it); `in_review` (held by one reviewer, who claimed it or
was assigned it); `checked` (the holder says every segment of the newest revision is checked);
`approved` (a second person, never the checker, approves). Each transition takes the acting
`accounts.Account` and appends a custody `state` event naming it, the evidence of who moved the
bundle; `workflow_record` says why custody is authoritative and the SQLite index only a copy.

A transition reads the status from custody and writes its event under the video's bundle lock, so
two reviewers claiming at once are served one after the other: the first holds it, the second is
told who does. A refusal is a `WorkflowError` whose `status` is 403 when this person may not (wrong
role or language, the checker approving their own work) and 409 when the bundle's state does not
allow it; its message names the video by id, never a file path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from pipeline import __version__, failpoints
from pipeline.archive import catalog, custody, locks
from pipeline.archive.bundle import find_bundle
from pipeline.errors import TestimonyError
from pipeline.review import accounts, revisions
from pipeline.review import workflow_record as record
from pipeline.review.workflow_record import APPROVED, CHECKED, DRAFT, IN_REVIEW, STATES, Status

__all__ = ["APPROVED", "CHECKED", "DRAFT", "IN_REVIEW", "STATES", "Status", "WorkflowError", "after_save",
           "approve", "approved", "assign", "check", "claim", "describe", "progress", "queue", "release", "state"]

FORBIDDEN, NOT_FOUND, CONFLICT = 403, 404, 409


class WorkflowError(TestimonyError):
    """A transition refused; nothing was changed. `status`: 403 (this person may not), 404 (no such
    bundle or account), 409 (not from the bundle's present state)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Video:
    """What the workflow needs to know of a bundle: whose language, and where its revisions are."""

    sha256: str
    id: str
    language: str | None


@dataclass(frozen=True)
class Queued:
    """A draft waiting in its language's queue."""

    sha256: str
    id: str
    file_name: str
    duration: float | None
    created: str | None


def describe(status: Status) -> str:
    """The status in words, for messages and the CLI."""
    if status.state == IN_REVIEW:
        return f"in review, held by {status.holder}"
    if status.state == CHECKED:
        return f"checked by {status.checker}"
    if status.state == APPROVED:
        return f"approved by {status.approver} (checked by {status.checker})"
    return "a draft nobody holds"


def state(archive: str | Path, sha256: str) -> Status:
    """The bundle's status, as its custody log records it (a bundle never moved is a draft)."""
    return record.logged_status(archive, sha256)


def _video(archive: Path, sha256: str) -> Video:
    """The catalog's entry for the bundle (synced once when it is not there yet), or a 404."""
    sql = "SELECT sha256, id, language FROM videos WHERE sha256 = ? AND status = 'done' AND bundle IS NOT NULL"
    for attempt in range(2):
        with catalog.connect(archive) as con:
            row = con.execute(sql, (sha256,)).fetchone()
        if row is not None:
            return Video(row["sha256"], row["id"], row["language"])
        if attempt == 0:
            catalog.sync(archive)
    raise WorkflowError(f"no bundle of video {sha256[:12]} in this archive", NOT_FOUND)


def _transition(archive: str | Path, sha256: str, account: accounts.Account, action: str,
                decide: Callable[[Status, Video], Status]) -> Status:
    """Decide the new status from the logged one under the video's lock, log it, copy it to the index.
    A decision that changes nothing logs nothing."""
    archive = Path(archive)
    if account.disabled or account.locked:
        raise WorkflowError(f"the account {account.name} is disabled or locked", FORBIDDEN)
    video = _video(archive, sha256)
    with locks.bundle_lock(archive, sha256):
        now = record.logged_status(archive, sha256)
        new = decide(now, video)
        if replace(new, changed=None) == replace(now, changed=None):
            return now
        record.moving(archive, sha256)  # a crash before `put` leaves a mark, not a stale row
        event = custody.append(archive, sha256, record.EVENT, action=action, by=account.name, role=account.role,
                               tool="testimony", version=__version__, **{"from": now.state}, **new.fields())
        new = replace(new, changed=event["time"])
        failpoints.reached("workflow:logged")
        record.put(archive, sha256, new)
    return new


def _may_edit(account: accounts.Account, video: Video) -> None:
    """Only an admin, or a reviewer of the bundle's language, takes part in its review."""
    if not account.can_edit(video.language or ""):
        if account.role == "reviewer":
            raise WorkflowError(f"{account.name} does not review {video.language or 'this language'} "
                                f"(video {video.id})", FORBIDDEN)
        raise WorkflowError(f"a {account.role} account cannot review (video {video.id})", FORBIDDEN)


def _require(now: Status, allowed: tuple[str, ...], verb: str, video: Video) -> None:
    """A 409 naming the state the bundle is in, when it is not one the transition starts from."""
    if now.state not in allowed:
        raise WorkflowError(f"cannot {verb} video {video.id}: it is {describe(now)}", CONFLICT)


def claim(archive: str | Path, sha256: str, account: accounts.Account) -> Status:
    """A reviewer of the language (or an admin) takes a draft: it is in review, held by them."""
    def decide(now: Status, video: Video) -> Status:
        _may_edit(account, video)
        _require(now, (DRAFT,), "claim", video)
        return Status(IN_REVIEW, holder=account.name)
    return _transition(archive, sha256, account, "claim", decide)


def assign(archive: str | Path, sha256: str, to_name: str, account: accounts.Account) -> Status:
    """An admin gives a draft, or a bundle someone else holds, to a reviewer of its language."""
    def decide(now: Status, video: Video) -> Status:
        if account.role != "admin":
            raise WorkflowError(f"only an admin assigns bundles; {account.name} is a {account.role}", FORBIDDEN)
        target = accounts.get(archive, to_name)
        if target is None:
            raise WorkflowError(f"no account called {to_name!r}", NOT_FOUND)
        if target.disabled or target.locked or not target.can_edit(video.language or ""):
            raise WorkflowError(f"{to_name} cannot review video {video.id} ({video.language or 'unknown language'})",
                                FORBIDDEN)
        _require(now, (DRAFT, IN_REVIEW), "assign", video)
        return Status(IN_REVIEW, holder=target.name)
    return _transition(archive, sha256, account, "assign", decide)


def release(archive: str | Path, sha256: str, account: accounts.Account) -> Status:
    """The holder (or an admin) gives a bundle in review back to the queue as a draft."""
    def decide(now: Status, video: Video) -> Status:
        _may_edit(account, video)
        _require(now, (IN_REVIEW,), "release", video)
        if account.name != now.holder and account.role != "admin":
            raise WorkflowError(f"video {video.id} is held by {now.holder}: only they or an admin may release it",
                                FORBIDDEN)
        return Status(DRAFT)
    return _transition(archive, sha256, account, "release", decide)


def check(archive: str | Path, sha256: str, account: accounts.Account) -> Status:
    """The holder says the bundle is checked: refused while any segment of its newest revision is not."""
    def decide(now: Status, video: Video) -> Status:
        _may_edit(account, video)
        _require(now, (IN_REVIEW,), "mark checked", video)
        if account.name != now.holder:
            raise WorkflowError(f"video {video.id} is held by {now.holder}: only they may mark it checked",
                                FORBIDDEN)
        segments = revisions.newest(find_bundle(archive, sha256)).segments
        unchecked = sum(not s.get("checked") for s in segments)
        if unchecked:
            raise WorkflowError(f"{unchecked} of {len(segments)} segments of video {video.id} are not checked yet",
                                CONFLICT)
        return Status(CHECKED, holder=now.holder, checker=account.name)
    return _transition(archive, sha256, account, "check", decide)


def approve(archive: str | Path, sha256: str, account: accounts.Account) -> Status:
    """A second person (a reviewer of the language or an admin), never the checker, approves."""
    def decide(now: Status, video: Video) -> Status:
        _may_edit(account, video)
        _require(now, (CHECKED,), "approve", video)
        if account.name == now.checker:
            raise WorkflowError(f"{account.name} checked video {video.id}: a second person must approve it",
                                FORBIDDEN)
        return Status(APPROVED, holder=now.holder, checker=now.checker, approver=account.name)
    return _transition(archive, sha256, account, "approve", decide)


def after_save(archive: str | Path, sha256: str, account: accounts.Account) -> Status:
    """What a saved revision does to the state: a checked or approved bundle goes back into review,
    held by the saver (what was checked has changed); a reviewer's save of a draft claims it. A save
    of a bundle in review leaves it with its holder. Never refuses: the save has happened."""
    def decide(now: Status, video: Video) -> Status:
        if now.state in (CHECKED, APPROVED) or now.state == DRAFT and account.role == "reviewer":
            return Status(IN_REVIEW, holder=account.name)
        return now
    return _transition(archive, sha256, account, "save", decide)


PUBLISHED = "status = 'done' AND bundle IS NOT NULL"
_MOVED = "sha256 IN (SELECT value FROM json_each(?))"  # a JSON list of SHA-256s: one parameter, any length


def _moved(archive: str | Path) -> dict[str, str]:
    """sha256 -> state of every bundle that is not a draft now (usually a few of the archive's)."""
    return {sha: s.state for sha, s in record.states(archive).items() if s.state != DRAFT}


def queue(archive: str | Path, language: str) -> list[Queued]:
    """The drafts of one language nobody holds, oldest first (by the time the machine published them)."""
    with catalog.connect(archive) as con:
        rows = con.execute(f"SELECT sha256, id, file_name, duration, created FROM videos WHERE {PUBLISHED} "
                           f"AND language = ? AND NOT {_MOVED} ORDER BY created, file_name, sha256",
                           (language, json.dumps(list(_moved(archive))))).fetchall()
    return [Queued(*row) for row in rows]


def progress(archive: str | Path) -> dict[str, dict[str, float]]:
    """Hours of speech in each state, per language (a bundle of unknown language under "unknown"): SQLite
    sums each language; only the bundles that are not drafts are read one by one."""
    moved = _moved(archive)
    language = "coalesce(language, 'unknown')"
    with catalog.connect(archive) as con:
        totals = con.execute(f"SELECT {language}, total(duration) FROM videos WHERE {PUBLISHED} GROUP BY 1")
        seconds = {lang: {**dict.fromkeys(STATES, 0.0), DRAFT: secs} for lang, secs in totals}
        for sha, lang, secs in con.execute(f"SELECT sha256, {language}, coalesce(duration, 0) FROM videos "
                                           f"WHERE {PUBLISHED} AND {_MOVED}", (json.dumps(list(moved)),)):
            seconds[lang][DRAFT] -= secs
            seconds[lang][moved[sha]] += secs
    return {lang: {state: round(max(secs, 0.0) / 3600.0, 6) for state, secs in row.items()}
            for lang, row in sorted(seconds.items())}


def approved(archive: str | Path) -> set[str]:
    """The SHA-256s of every approved bundle: what a reader may list and read."""
    return {sha for sha, status in record.states(archive).items() if status.state == APPROVED}
