"""serve's console: one line per message; tracebacks and full messages go to the log file.

A bad file used to print some thirty lines on the console: Prefect's traceback of the exception and the
same message three or four times. The person watching serve needs to know which file failed and why,
once; whoever debugs needs the traceback. So the console shows each record's first line (a final
state without the message it repeats), and `<prefect home>/serve.log` keeps every record whole. The
records sent to the Prefect server (the UI's run logs) are untouched.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

LOG_FILE = "serve.log"
_FINAL_STATE = re.compile(r"(Finished in state \w+)\(.*\)\s*$", re.DOTALL)


class OneLine(logging.Formatter):
    """Wraps a console formatter: no traceback, no second line, a final state without its message."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        shown = copy.copy(record)  # the API and file handlers format the same record: leave it whole
        shown.exc_info = shown.exc_text = shown.stack_info = None
        text = self.inner.format(shown)
        return _FINAL_STATE.sub(r"\1", text).split("\n", 1)[0]


def one_line_console(home: Path) -> Path:
    """Make the root logger's console handlers print one line per record and send every record whole
    to `home/serve.log`; returns the log file's path."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setFormatter(OneLine(handler.formatter or logging.Formatter()))
    path = Path(home) / LOG_FILE
    full = logging.FileHandler(path, encoding="utf-8")
    full.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(full)
    return path
