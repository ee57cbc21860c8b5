"""Who saw what: the archive's access log, `<archive>/access.jsonl`, append-only and hash-chained.

Witness safety must know who looked at which testimony, and an evidence record who changed it. Every
sign-in (and refusal), view, play, download, search, export, state change, account change, save and
password change is one line: its UTC time, `who` (an account, or `local:<OS user>` for the command
line), the `action`, the `bundle` id when there is one, a small `detail`, and `prev`, chained as custody
is (`pipeline.chain`): editing, removing or reordering a line breaks the chain, and `check_chain` (run
by `testimony verify`) names the line. Lines go through the one appender (`jsonl.locked`), so a server's
threads and a command line writing at once never interleave. A password never goes in: a detail key
that names one is refused.
"""

from __future__ import annotations

import os
import pwd
import re
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

from pipeline import __version__, chain, jsonl

FILE = "access.jsonl"
ACTIONS = ("sign-in", "sign-in-refused", "sign-out", "view", "play", "download", "search", "export", "state",
           "account", "save", "password")
REPAIR = "repair"  # written by the log itself when it sets a torn line aside; never by a caller
BUNDLE = re.compile(r"^[0-9a-f]{12}$")
TORN_HINT = "the next event recorded (or `testimony repair`) sets it aside and logs that"


def log_path(archive: str | Path) -> Path:
    """Where the archive's access log lives."""
    return Path(archive) / FILE


def local_user() -> str:
    """`who` for the command line: `local:` and the OS account running it (from the process's user id,
    not $USER, which anyone can set)."""
    try:
        return f"local:{pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:  # a user id with no passwd entry (a container): the number still names it
        return f"local:{os.geteuid()}"


def record(archive: str | Path, who: str, action: str, *, bundle: str | None = None, **detail: Any) -> dict[str, Any]:
    """Append one event and return it as written; all of its line, or nothing (jsonl.AppendError).

    ValueError for an unknown action, an empty `who`, a `bundle` that is not a 12-hex id, or a detail
    key naming a password. Creates the log (0600) on first use; a last line a crash cut off is first
    set aside (`repair_torn_tail`)."""
    entry = _entry(who, action, bundle, detail)
    path = log_path(archive)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with jsonl.locked(path, 0o600) as log:
        _repair_torn_tail(log)
        return _write(log, entry)


def _entry(who: str, action: str, bundle: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    """The event's fields (without time and prev), checked before the log is opened."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r}; one of {', '.join(ACTIONS)}")
    if not isinstance(who, str) or not who.strip():
        raise ValueError("an access event needs who did it (an account name, or local:<user>)")
    if bundle is not None and not BUNDLE.match(str(bundle)):
        raise ValueError(f"bundle {bundle!r} is not a bundle id (its 12 hex digits)")
    if leaked := [key for key in detail if "password" in key.lower()]:
        raise ValueError(f"the access log never holds a password: drop {', '.join(leaked)}")
    entry: dict[str, Any] = {"who": who, "action": action}
    if bundle is not None:
        entry["bundle"] = bundle
    if detail:
        entry["detail"] = detail
    return entry


def _write(log: jsonl.Appender, entry: dict[str, Any]) -> dict[str, Any]:
    """One event chained to the log's last whole line (the caller holds the log's lock)."""
    written = {"time": chain.now(), **entry, "prev": chain.prev_hash(log)}
    log.write(jsonl.encode(written, ascii_only=True))
    return written


def _repair_torn_tail(log: jsonl.Appender) -> dict[str, Any] | None:
    """A line a crash cut off is kept in `access.torn-<n>` beside the log, cut from it, and a `repair`
    event (by the OS user whose process found it) says so: the chain goes on whole, as custody's does."""
    torn = chain.set_aside_torn_tail(log)
    if torn is None:
        return None
    detail = {"repaired": "torn-tail", "tool": "testimony", "version": __version__, **torn}
    return _write(log, {"who": local_user(), "action": REPAIR, "detail": detail})


def repair_torn_tail(archive: str | Path) -> dict[str, Any] | None:
    """Set aside a cut-off last line of the access log now; the repair event, or None."""
    path = log_path(archive)
    if not path.is_file():
        return None
    with jsonl.locked(path, 0o600) as log:
        return _repair_torn_tail(log)


def entries(archive: str | Path, *, who: str | None = None, bundle: str | None = None,
            since: date | datetime | None = None) -> list[dict[str, Any]]:
    """The log's events, oldest first, those of `who`, about `bundle` and at or after `since` (a date:
    from its first moment, UTC; a datetime without a zone: UTC); [] when there is no log."""
    start = _moment(since) if since is not None else None
    found = []
    for event in jsonl.read(log_path(archive)):
        if who is not None and event.get("who") != who:
            continue
        if bundle is not None and event.get("bundle") != bundle:
            continue
        if start is not None and not _at_or_after(event, start):
            continue
        found.append(event)
    return found


def _moment(since: date | datetime) -> datetime:
    """A date or datetime as an aware UTC datetime (a date: its midnight)."""
    if not isinstance(since, datetime):
        since = datetime.combine(since, time.min)
    return since if since.tzinfo else since.replace(tzinfo=timezone.utc)


def _at_or_after(event: dict[str, Any], start: datetime) -> bool:
    """Whether the event's time is `start` or later; an event whose time cannot be read is kept (shown,
    not hidden: `verify` reports a changed line)."""
    try:
        return _moment(datetime.fromisoformat(event["time"])) >= start
    except (KeyError, TypeError, ValueError):
        return True


def check_chain(archive: str | Path, noted: str | None = None) -> list[str]:
    """Problems with the log's integrity (empty when intact, or when there is no log), and against a head
    `noted` earlier (`chain.holds`)."""
    return verified(archive, noted)[0]


def verified(archive: str | Path, noted: str | None = None) -> tuple[list[str], str | None]:
    """`check_chain`'s problems and the log's head to keep elsewhere (None with a problem, or no log),
    from one read under a shared lock, so a line being appended is never mistaken for a torn one."""
    path = log_path(archive)
    if not path.is_file():
        return ([f"{FILE}: missing, but a head was noted for it: the log was removed"] if noted else []), None
    return chain.verified(chain.read_shared(path), FILE, TORN_HINT, _known_action, noted)


def _known_action(event: dict[str, Any]) -> str | None:
    """A line whose action is not one this log writes was not written by it."""
    if event.get("action") in (*ACTIONS, REPAIR):
        return None
    return f"unknown action {event.get('action')!r}"
