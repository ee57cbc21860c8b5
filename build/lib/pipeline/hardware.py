"""How many CPU threads the inference engines may use, and which device they run on.

Why: torch and CTranslate2 size their thread pools from the machine's core count, but a container
or a batch scheduler often grants fewer (CPU affinity, a cgroup quota). More threads than usable
cores makes Whisper's many small decoder steps far slower, not faster.
"""

from __future__ import annotations

import os
from pathlib import Path

THREADS_ENV = "TESTIMONY_THREADS"


def usable_cores() -> int:
    """Cores this process may run on: CPU affinity, narrowed by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def thread_count() -> int:
    """Inference threads: `TESTIMONY_THREADS` when set, else every usable core."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return usable_cores()


def configure_torch() -> int:
    """Set torch's intra-op threads once, unless the user pinned them with OMP_NUM_THREADS."""
    import torch

    if os.environ.get("OMP_NUM_THREADS") and not os.environ.get(THREADS_ENV):
        return torch.get_num_threads()
    threads = thread_count()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def ct2_cuda_available() -> bool:
    """CTranslate2's own view: its wheel may lack CUDA even where torch has it, and vice versa."""
    import ctranslate2

    try:
        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a CPU-only build or a broken driver: run on the CPU
        return False
