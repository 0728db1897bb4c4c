"""The busy-host bench case's stand-in programs (engine.bench.timing.other_programs) end with
the block, and with the bench process however it ends: a bench killed outright must not leave
a process spinning on the user's machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.bench.timing import other_programs

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 30.0  # they go within milliseconds; the margin is for a loaded machine


def _running(pid: int) -> bool:
    """Whether *pid* is a live process; where /proc shows states (Linux), a zombie awaiting
    its reaper counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:  # gone meanwhile, or no /proc (macOS): signal 0 reached it
        return not Path("/proc/self/stat").exists()


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_programs_run_inside_the_block_and_end_with_it():
    with other_programs(2) as pids:
        assert len(pids) == 2 and len(set(pids)) == 2
        assert all(_running(pid) for pid in pids)
    assert all(_gone_within(pid, WAIT_S) for pid in pids)


def test_the_programs_end_when_the_bench_process_is_killed():
    script = ("import time\n"
              "from engine.bench.timing import other_programs\n"
              "with other_programs(1) as pids:\n"
              "    print(pids[0], flush=True)\n"
              "    time.sleep(600)\n")
    bench = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        child = int(bench.stdout.readline())
        assert _running(child)
        bench.send_signal(signal.SIGKILL)  # no finally, no atexit: the child must notice
        bench.wait()
        assert _gone_within(child, WAIT_S)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
