"""How many CPU threads torch uses for generation.

Per-token generation on CPU runs many small matmuls: threads add synchronisation at every operation, and
on a machine whose cores are already busy each thread also waits for a core. Measured on a 2-core VM at
load average ~12, ``yue-infer generate`` with the tiny test models (2 sections, 300 tokens each): 76 s and
90 s of wall time with 1 thread, 581 s with 2 (torch's default, one per core).
The default here: one thread when the machine is busy (1-minute load average at or above its cores),
else up to 4.
"""

from __future__ import annotations

import os

DEFAULT_THREADS_HELP = "1 on a busy machine (load average >= cores), else min(4, cores)"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    cores = usable_cores() if cores is None else cores
    load = os.getloadavg()[0] if load is None and hasattr(os, "getloadavg") else (load or 0.0)
    return 1 if load >= cores else max(1, min(4, cores))


def torch_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (None: :func:`default_threads`); returns the number."""
    n = default_threads() if threads is None else threads
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    import torch  # here, not at the top: `yue-infer --help` loads no deep-learning stack

    torch.set_num_threads(n)
    return n
