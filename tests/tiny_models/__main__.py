"""`python -m tests.tiny_models DIR`: write every tiny model format under DIR."""

import sys
from pathlib import Path

from . import write_all

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.tiny_models DIR")
    for fmt, where in write_all(Path(sys.argv[1])).items():
        print(f"{fmt}: {where}")
