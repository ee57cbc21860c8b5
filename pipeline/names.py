"""File names shown to people and written into records: text, whatever bytes the name holds.

A name from a witness's phone may not be UTF-8; it is kept visible as backslash escapes instead of
failing or being replaced by question marks, and the same escapes are used everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | os.PathLike) -> str:
    """The whole path as text; bytes that are not UTF-8 become escapes such as \\xff."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def display_name(path: str | os.PathLike) -> str:
    """The file name alone, as `display_path` shows it."""
    return display_path(Path(path).name)


def one_line(text: str) -> str:
    """Text for a terminal line or a log: newlines and carriage returns in a name become escapes."""
    return text.replace("\n", "\\n").replace("\r", "\\r")
