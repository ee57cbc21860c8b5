"""`testimony progress` (hours of speech per language in each review state) and the workflow's verbs of
`testimony review` (claim, release, check, approve, assign), acting as a named existing account."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli.errors import REFUSED, error, guarded
from pipeline.cli.integrity import OUT_HELP, _archive, _resolve

ACTIONS = ("claim", "release", "check", "approve", "assign")
HEADINGS = {"draft": "DRAFT", "in_review": "IN REVIEW", "checked": "CHECKED", "approved": "APPROVED"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `progress` on the `testimony` parser."""
    progress = sub.add_parser("progress", help="hours of speech per language in each review state: draft, "
                              "in review, checked, approved")
    progress.add_argument("--json", action="store_true", help="print the hours as JSON")
    progress.add_argument("--rebuild", action="store_true", help="first make the state index "
                          "(.workflow.sqlite) again from the custody logs, which are the record")
    progress.add_argument("--out", help=OUT_HELP)


def add_review_arguments(review: argparse.ArgumentParser) -> None:
    """What `testimony review claim|release|check|approve|assign` needs beyond import's arguments."""
    review.add_argument("--to", metavar="NAME", help="with assign: the reviewer who is to hold the bundle")


def _table(hours: dict[str, dict[str, float]]) -> list[str]:
    """One row a language and a total, hours with two decimals; columns right-aligned."""
    rows = [["LANG", *HEADINGS.values()]]
    rows += [[lang, *(f"{by_state[s]:.2f}" for s in HEADINGS)] for lang, by_state in hours.items()]
    rows.append(["all", *(f"{sum(h[s] for h in hours.values()):.2f}" for s in HEADINGS)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]) for r in rows]


@guarded
def cmd_progress(args: argparse.Namespace) -> int:
    from pipeline.archive import catalog
    from pipeline.review import workflow

    archive = _archive(args.out)
    catalog.sync(archive)
    if args.rebuild:
        from pipeline.review import workflow_record

        print(f"state index rebuilt: {workflow_record.rebuild(archive)} bundle(s) moved by a person", file=sys.stderr)
    hours = workflow.progress(archive)
    if args.json:
        print(json.dumps({lang: {s: round(h, 4) for s, h in row.items()} for lang, row in hours.items()}))
        return 0
    if not hours:
        print(f"no bundles in {archive}", file=sys.stderr)
        return 0
    print("hours of speech in each review state")
    print("\n".join(_table(hours)))
    return 0


@guarded
def cmd_transition(args: argparse.Namespace) -> int:
    """One transition by the account `--as` names; the bundle's new state on one line."""
    from pipeline.archive.bundle import source_of
    from pipeline.review import accounts, workflow

    usage = f"testimony review {args.action} ID {'--to NAME ' if args.action == 'assign' else ''}--as NAME"
    if not args.video or not args.as_name or (args.action == "assign" and not args.to):
        error(f"review {args.action} needs {usage}")
        return REFUSED
    archive = _archive(args.out)
    account = accounts.get(archive, args.as_name)
    if account is None:
        error(f"no account called {args.as_name!r} (see `testimony users list`)")
        return REFUSED
    bundle, _video = _resolve(archive, args.video)
    sha256 = source_of(bundle).get("sha256") or ""
    if args.action == "assign":
        status = workflow.assign(archive, sha256, args.to, account)
    else:
        status = getattr(workflow, args.action)(archive, sha256, account)
    print(f"{bundle.name}: {workflow.describe(status)}")
    return 0
