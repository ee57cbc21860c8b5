"""Named points where the fault-injection tests kill the process with a real SIGKILL.

`TESTIMONY_KILL_AT=NAME` (or `NAME#N`, the N-th time the point is reached) makes this process
SIGKILL itself there: no handler, no `finally`, no flush, exactly like the OOM killer or a power
cut. Unset, as it always is in use, each point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "TESTIMONY_KILL_AT"


def reached(name: str, count: int = 1) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("#")
    if _matches(point, name) and count == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _matches(point: str, name: str) -> bool:
    """`asr:group` matches `asr-<key>:group`: a test names the stage, not the options digest."""
    stem, _, kind = name.partition(":")
    return point == name or point == f"{stem.split('-', 1)[0]}:{kind}"
