"""Named points where the fault-injection tests stop or kill the process, for real.

`TESTIMONY_KILL_AT=NAME` (or `NAME#N`, the N-th time the point is reached) makes this process
SIGKILL itself there: no handler, no `finally`, no flush, exactly like the OOM killer or a power
cut. `TESTIMONY_STOP_AT` sends SIGSTOP instead, so a test can change the world (fill the disk) at
that exact point and then SIGCONT. Unset, as they always are in use, a point costs two lookups.
"""

from __future__ import annotations

import os
import signal

ACTIONS = {"TESTIMONY_KILL_AT": signal.SIGKILL, "TESTIMONY_STOP_AT": signal.SIGSTOP}


def reached(name: str, count: int = 1) -> None:
    for env, sig in ACTIONS.items():
        wanted = os.environ.get(env)
        if not wanted:
            continue
        point, _, nth = wanted.partition("#")
        if _matches(point, name) and count == int(nth or 1):
            os.kill(os.getpid(), sig)


def _matches(point: str, name: str) -> bool:
    """`asr:group` matches `asr-<key>:group`: a test names the stage, not the options digest."""
    stem, _, kind = name.partition(":")
    return point == name or point == f"{stem.split('-', 1)[0]}:{kind}"
