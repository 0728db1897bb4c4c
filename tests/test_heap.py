"""The training processes' heap policy (engine.base.heap): a step's freed arrays stay in the
process for the next step instead of being faulted in again page by page."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

# A step-like pattern in a fresh process: three 6 MB arrays written, then all freed, 20 times.
# The resident memory right after the first round's arrays are freed says whether the process
# kept them (page-fault counts alone vary with transparent huge pages); then the minor page
# faults per round after that first round.
_PROBE = r"""
import json, resource, sys
import numpy as np
from engine.base import heap
on = heap.keep_freed_memory() if sys.argv[1] == "keep" else False
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
def step():
    arrays = [np.ones(1_500_000, np.float32) for _ in range(3)]
    return sum(float(a[-1]) for a in arrays)
start = rss()
step()
held = rss() - start
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
print(json.dumps({"on": on, "kept": heap.is_kept(), "faults": faults, "held": held}))
"""

_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("WIREGRAD_KEEP_FREED_MEMORY", "MALLOC_MMAP_THRESHOLD_",
                          "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_kept_memory_is_not_faulted_in_again():
    kept, default = _probe("keep"), _probe("default")
    assert kept["on"] is _GLIBC and kept["kept"] is _GLIBC
    assert default["kept"] is False
    if _GLIBC:  # 18 MB a round: kept, they are not faulted in again (~4,400 pages)
        assert kept["held"] > 15_000_000, kept
        assert kept["faults"] < 100, kept
        # glibc's default maps arrays this size on their own and unmaps them when freed
        assert default["held"] < 5_000_000, default


def test_switched_off_by_the_environment():
    assert _probe("keep", WIREGRAD_KEEP_FREED_MEMORY="0")["kept"] is False
    # the user's own glibc setting is theirs: the policy stays off
    assert _probe("keep", MALLOC_TRIM_THRESHOLD_="1000000")["kept"] is False
    assert _probe("keep", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536")["kept"] is False
    # a tunable that is not malloc's leaves the policy on
    assert _probe("keep", GLIBC_TUNABLES="glibc.cpu.x86_rep_movsb_threshold=4096")["kept"] \
        is _GLIBC


_RELEASE = r"""
import json
import numpy as np
from engine.base import heap
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
heap.keep_freed_memory()
arrays = [np.ones(1_500_000, np.float32) for _ in range(3)]
del arrays
held = rss()
heap.release_freed_memory()
print(json.dumps({"held": held, "after": rss(), "kept": heap.is_kept()}))
"""


def test_release_hands_memory_back_and_keeps_the_policy():
    if not _GLIBC:
        from engine.base import heap

        heap.release_freed_memory()  # nothing to release off glibc, and no error
        assert heap.is_kept() is False
        return
    out = subprocess.run([sys.executable, "-c", _RELEASE], capture_output=True, text=True,
                         timeout=120, check=True)
    res = json.loads(out.stdout)
    assert res["kept"] is True
    assert res["held"] - res["after"] > 10_000_000, res  # the 18 MB went back
