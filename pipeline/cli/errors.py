"""How every `testimony` command ends: its exit status, and errors as one line a person can act on.

Exit status (README lists them too):
- 0: done;
- 1: the work failed for at least one file, a check found a problem, a search found nothing, or a
  model command failed: the line before says which and what to do;
- 2: the request itself could not be met: an unknown id, a missing archive, a bad option or setting;
- 130: interrupted (Ctrl-C); whatever was finished is kept, the next run resumes the rest.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import sys
from typing import Callable

from pipeline.errors import TestimonyError

OK, FAILED, REFUSED, INTERRUPTED = 0, 1, 2, 130

Command = Callable[[argparse.Namespace], int]


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def guarded(command: Command | None = None, *, status: int = REFUSED, subject: str | None = None):
    """Our errors, the catalog's and the file system's reach the user as one line, never a traceback.

    `status` is the exit status they give; `subject` names an argument (a path, a model name) to put
    before the message when the message does not already say it.
    """
    def wrap(command: Command) -> Command:
        @functools.wraps(command)
        def run(args: argparse.Namespace) -> int:
            try:
                return command(args)
            except sqlite3.Error as exc:
                from pipeline import config
                from pipeline.archive import catalog

                error(f"the archive catalog could not be read or written ({exc}); check the permissions of "
                      f"{catalog.catalog_path(config.archive_dir(getattr(args, 'out', None)))}")
            except (TestimonyError, OSError, ValueError) as exc:
                error(_about(exc, getattr(args, subject, None) if subject else None))
            return status
        return run
    return wrap(command) if command else wrap


def _about(exc: BaseException, subject: object) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, TestimonyError) and exc.strerror:
        message = f"{exc.strerror} ({exc.filename or ''})"
    else:
        message = str(exc)
    if subject and str(subject) not in message:
        return f"{subject}: {message}"
    return message


def missing_eval_extra(command: str) -> bool:
    """The scorers (jiwer, sacrebleu) are the `eval` extra: when one is missing, say so in one line
    before any work (True), instead of a traceback half way."""
    from pipeline.evaluation.extra import missing_scorers_hint

    hint = missing_scorers_hint(command)
    if hint:
        error(hint)
    return hint is not None
