"""`testimony users`: the archive's accounts (add, list, disable, reset).

`add` and `reset` print the new one-time password alone on standard output, so a script can take it;
`--password-stdin` reads one instead. A made password must be changed at first sign-in; one a script
gave with `add` is the person's own (the script's operator chose it for them on purpose).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config
from pipeline.cli.errors import guarded
from pipeline.cli.integrity import OUT_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="the archive's accounts: add, list, disable, reset")
    users.add_argument("--out", help=OUT_HELP)
    verbs = users.add_subparsers(dest="users_command", required=True)
    add = verbs.add_parser("add", help="create an account; prints its one-time password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "reviewer", "reader"],
                     help="admin: everything; reviewer: reads and edits bundles in their languages; "
                     "reader: reads approved transcripts only")
    add.add_argument("--languages", default="", help="comma-separated language codes a reviewer checks (kk,ug)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    verbs.add_parser("list", help="every account: role, languages, state")
    disable = verbs.add_parser("disable", help="the account can no longer sign in (its history stays)")
    disable.add_argument("name")
    reset = verbs.add_parser("reset", help="a new one-time password; lifts a lock or a disable")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def _password(args: argparse.Namespace) -> str | None:
    """A password piped in (first line, without its newline), or None to have one made."""
    if not args.password_stdin:
        return None
    given = sys.stdin.readline().rstrip("\r\n")
    if not given:
        from pipeline.review.accounts import AccountError

        raise AccountError("--password-stdin: standard input held no password")
    return given


def _state(account) -> str:
    if account.disabled:
        return "disabled"
    if account.locked:
        return "locked"
    return "must change password" if account.must_change else "active"


@guarded
def run(args: argparse.Namespace) -> int:
    from pipeline.review import accounts

    archive = config.archive_dir(args.out)
    verb = args.users_command
    if verb == "add":
        languages = tuple(x.strip() for x in args.languages.split(",") if x.strip())
        given = _password(args)  # a password a script chose is the person's; a made one is one-time
        password = accounts.add(archive, args.name, args.role, languages, given, must_change=given is None)
        _log(archive, args.name, "add")
        print(password)
    elif verb == "reset":
        password = accounts.reset(archive, args.name, _password(args))
        _log(archive, args.name, "reset")
        print(password)
    elif verb == "disable":
        accounts.disable(archive, args.name)
        _log(archive, args.name, "disable")
        print(f"{args.name}: disabled", file=sys.stderr)
    else:
        for a in accounts.accounts(archive):
            print(f"{a.name}\t{a.role}\t{','.join(a.languages) or '-'}\t{_state(a)}")
    return 0


def _log(archive: Path, name: str, change: str) -> None:
    """The change, in the access log as the OS user who made it: whose account, what, its role now;
    never the password. Logged once the change is made, before the password is shown."""
    from pipeline.archive import access
    from pipeline.review import accounts

    account = accounts.get(archive, name)
    access.record(archive, access.local_user(), "account", account=name, change=change,
                  role=account.role if account else None, languages=list(account.languages) if account else [])
