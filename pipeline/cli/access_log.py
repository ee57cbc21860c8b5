"""`testimony access-log`: who saw what, from the archive's access log (`pipeline.archive.access`).

Reading only: the log is printed, never changed; `testimony verify` checks its chain.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from pipeline.archive import access
from pipeline.cli.errors import guarded
from pipeline.cli.integrity import OUT_HELP, _archive


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `access-log` on the `testimony` parser."""
    log = sub.add_parser("access-log", help="who signed in, viewed, played, downloaded, searched, exported or "
                         "changed what, oldest first (the archive's hash-chained access log)")
    log.add_argument("--who", metavar="NAME", help="only this account's events (the command line is local:<user>)")
    log.add_argument("--bundle", metavar="ID", type=_bundle_id, help="only events about this bundle (its id: the "
                     "first 12 hex digits of the SHA-256; a longer SHA-256 or bundle folder name is cut to it)")
    log.add_argument("--since", metavar="YYYY-MM-DD", type=_day, help="only events on or after this day (UTC)")
    log.add_argument("--json", action="store_true", help="one JSON object per event, as logged (JSON Lines)")
    log.add_argument("--out", help=OUT_HELP)


def _day(text: str) -> date:
    """`2026-12-06` -> a date; anything else is a usage error (exit 2) that shows the form."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: give it as YYYY-MM-DD") from None


def _bundle_id(text: str) -> str:
    """A bundle id (12 hex digits), taken from the start of a SHA-256 or bundle folder name too."""
    key = text.strip().lower()[:12]
    if not access.BUNDLE.match(key):
        raise argparse.ArgumentTypeError(f"{text!r} is not a bundle id: give its 12 hex digits (`testimony list`)")
    return key


def _line(event: dict) -> str:
    """time, who, action, bundle, detail on one tab-separated line, whatever the names hold."""
    detail = " ".join(f"{key}={_flat(value)}" for key, value in (event.get("detail") or {}).items())
    fields = (event.get("time"), event.get("who"), event.get("action"), event.get("bundle") or "-", detail or "-")
    return "\t".join(_flat(field) for field in fields)


def _flat(value: object) -> str:
    """A value on one line without tabs: text as it is, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return " ".join(text.split())


@guarded
def cmd_access_log(args: argparse.Namespace) -> int:
    """The matching events on standard output, oldest first; their count on standard error."""
    archive = _archive(args.out)
    events = access.entries(archive, who=args.who, bundle=args.bundle, since=args.since)
    for event in events:
        print(json.dumps(event, ensure_ascii=False) if args.json else _line(event))
    print(f"{len(events)} access event(s)", file=sys.stderr)
    return 0
