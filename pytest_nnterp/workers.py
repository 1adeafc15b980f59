"""Torch threads under pytest-xdist: each worker gets its share of the cores.

torch starts one intra-op thread per core in every process. With ``-n 2`` on two cores, two workers each
spinning two threads ran the toy suite eleven times slower than with one thread each (188 s against 17 s for
the 196 toy models here), so workers take ``cores // workers`` threads unless the user set
``OMP_NUM_THREADS`` themselves.
"""

from __future__ import annotations

import os
import sys

import pytest


def share_cores_between_workers(config: pytest.Config) -> int | None:
    """On an xdist worker, limit torch to this worker's share of the cores; the thread count set, or None
    (not a worker, or the user chose ``OMP_NUM_THREADS``)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or "OMP_NUM_THREADS" in os.environ:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // int(workerinput.get("workercount", 1)))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch loads, if it has not yet
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads
