"""`python -m tests.tiny_models DIR [FORMAT ...]`: write every tiny model format (or those named) under DIR."""

import sys
from pathlib import Path

from . import write_all

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m tests.tiny_models DIR [FORMAT ...]")
    try:
        written = write_all(Path(sys.argv[1]), names=sys.argv[2:])
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    for fmt, where in written.items():
        print(f"{fmt}: {where}")
