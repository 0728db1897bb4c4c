"""The cold-start helper (engine.kernels.precompile): type descriptions, when it runs, that
what it compiles is what the main process then loads, that two processes compiling one
kernel at once are harmless, and that it never outlives its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine.kernels import cache_lock, precompile

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict:
    """A fresh, empty kernel cache of the test's own (Numba reads it once per process)."""
    return {**os.environ, "WIREGRAD_HOME": str(tmp_path / "home"),
            "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "WIREGRAD_PRECOMPILE": "1", **extra}


def _python(code: str, env: dict, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


# ------------------------------------------------------------------ descriptions

def test_descriptions_round_trip_the_types_numba_sees():
    from numba import typeof
    from numba.core import types

    base = np.zeros((3, 4), np.float32)
    readonly = np.ones(5, np.int64)
    readonly.flags.writeable = False
    for value in (base, base[:, 1:], base.T, readonly, np.zeros(2, bool), 3, 2.5, True,
                  np.float32(1.5), (1, 2), (1, 2.0), None):
        t = typeof(value)
        d = precompile.describe(t)
        assert json.loads(json.dumps(d)) == d
        assert precompile.rebuild(d) == t, (value, d)
    assert precompile.describe(typeof(base[:, 1:])) == {"a": "float32", "nd": 2, "l": "A"}
    assert precompile.rebuild("float64") is types.float64


@pytest.mark.parametrize("bad", ["__import__('os')", "float128", {"a": "object", "nd": 1, "l": "C"},
                                 {"a": "float32", "nd": 99, "l": "C"},
                                 {"a": "float32", "nd": 1, "l": "Z"}, ["float32"], 3])
def test_a_malformed_description_is_refused_not_evaluated(bad):
    with pytest.raises(ValueError):
        precompile.rebuild(bad)


def test_only_kernel_module_dispatchers_are_compiled():
    with pytest.raises(ValueError, match="not a kernel module"):
        precompile.dispatcher("os", "system")
    with pytest.raises(ValueError, match="not a Numba dispatcher"):
        precompile.dispatcher("engine.kernels.precompile", "describe")


# ------------------------------------------------------------------ the manifest

def test_every_manifest_entry_names_a_kernel_and_rebuilds_to_a_signature():
    m = precompile.manifest()
    assert m["ops"] and m["optimizers"], "run python tools/kernel_signatures.py"
    rows = [e for op in m["ops"].values() for d in op.values() for p in d.values() for e in p]
    rows += [e for o in m["optimizers"].values() for d in o.values() for e in d]
    rows += [e for d in m["trainer"].values() for e in d]
    for module, kernel, args, *_ in rows:
        disp = precompile.dispatcher(module, kernel)
        assert disp.py_func.__name__ == kernel
        sig = tuple(precompile.rebuild(a) for a in args)
        assert len(sig) == disp.py_func.__code__.co_argcount, (module, kernel)


def test_a_graph_needs_forward_then_backward_in_reverse_then_the_optimizer():
    need = precompile.needed(["layer_norm", "cross_entropy"], "float32", "adamw")
    names = [k for _, k, _ in need]
    assert names.index("layer_norm_fwd") < names.index("cross_entropy_fwd32")
    assert names.index("cross_entropy_fwd32") < names.index("cross_entropy_bwd32")
    assert names.index("cross_entropy_bwd32") < names.index("layer_norm_bwd")
    assert names[-1] == "adam_update"
    assert precompile.needed(["no_such_op"], "float32", None) == precompile.needed(
        [], "float32", None)


def test_params_keys_are_stable_and_never_raise():
    assert precompile.params_key({"b": 1, "a": (2, 3)}) == precompile.params_key(
        {"a": [2, 3], "b": 1})
    assert precompile.params_key({"a": 1}) != precompile.params_key({"a": 2})
    looped: dict = {}
    looped["self"] = looped
    assert precompile.params_key(looped) == ""
    assert precompile.params_key({1: "x", "y": 2}) == ""


def test_an_op_gets_the_signatures_recorded_under_its_params_or_all_when_unseen():
    rows = precompile.manifest()["ops"]["gelu"]["float32"]["forward"]
    assert len(rows) >= 2, "both GELU approximations are recorded"
    key = rows[0][3][0]
    one = precompile.needed([("gelu", key)], "float32", None)
    every = precompile.needed([("gelu", "params never seen")], "float32", None)
    assert len(one) < len(every) == len(precompile.needed(["gelu"], "float32", None))
    assert one[0][1] == rows[0][1]


def test_a_fresh_install_is_recognised_from_file_names_alone(tmp_path):
    entries = precompile.needed(["relu"], "float32", None)
    assert precompile.never_cached(entries, None)
    assert precompile.never_cached(entries, str(tmp_path / "absent"))
    folder = tmp_path / "numba" / "kernels_abc"
    folder.mkdir(parents=True)
    (folder / "loss.cross_entropy_fwd32-94.py311.nbi").write_bytes(b"")
    assert precompile.never_cached(entries, str(tmp_path / "numba"))
    (folder / "activations.relu_fwd-28.py311.nbi").write_bytes(b"")
    assert not precompile.never_cached(entries, str(tmp_path / "numba"))


# ------------------------------------------------------------------ when it runs

def test_it_runs_only_with_two_cores_a_writable_cache_and_no_opt_out(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setenv(precompile.OPT_OUT, "1")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert precompile.enabled()
    monkeypatch.setenv(precompile.OPT_OUT, "0")
    assert not precompile.enabled()
    monkeypatch.setenv(precompile.OPT_OUT, "1")
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not precompile.enabled()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "file" / "numba"))
    assert not precompile.enabled()


def test_by_default_it_runs_only_with_a_core_to_spare(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.delenv(precompile.OPT_OUT, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert precompile.enabled()
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 3.0))
    assert not precompile.enabled()
    monkeypatch.setenv(precompile.OPT_OUT, "1")  # forced
    assert precompile.enabled()


def test_a_lowered_priority_process_gets_a_helper_too(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.delenv(precompile.OPT_OUT, raising=False)
    monkeypatch.setattr(os, "nice", lambda inc: 5)  # the editor's worker: it runs the twins
    assert precompile.enabled()
    monkeypatch.setenv(precompile.OPT_OUT, "0")
    assert not precompile.enabled()


def test_a_helper_starts_only_when_much_of_the_step_must_compile():
    assert precompile.worth_a_helper(11, 11)  # a fresh install
    assert precompile.worth_a_helper(6, 11)
    assert not precompile.worth_a_helper(1, 11)  # a warm cache but one variant
    assert not precompile.worth_a_helper(2, 3)
    assert not precompile.worth_a_helper(0, 0)


HELPER_ROUND = """
    import json, numpy as np
    from engine.kernels import precompile
    ops = ["relu", "cross_entropy"]
    before = len(precompile.missing(precompile.needed(ops, "float32", "sgd")))
    precompile.prestart()  # a fresh install: it starts before the graph is known
    early = precompile._helper
    helper = precompile.start(ops, "float32", "sgd")
    code = helper.wait(timeout=240)
    after = len(precompile.missing(precompile.needed(ops, "float32", "sgd")))
    again = precompile.start(ops, "float32", "sgd")
    from engine.kernels import activations
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    out = np.empty_like(x)
    activations.relu_fwd(x, out)
    loaded = sum(activations.relu_fwd._cache_hits.values())
    print(json.dumps({"before": before, "code": code, "after": after,
                      "prestarted": early is not None and helper is early,
                      "again": again is None, "loaded": loaded,
                      "right": bool(np.array_equal(out, np.maximum(x, 0)))}))
"""


def test_the_helper_fills_the_cache_the_main_process_then_loads(tmp_path):
    got = json.loads(_python(HELPER_ROUND, _env(tmp_path)))
    assert got["before"] >= 3 and got["code"] == 0 and got["prestarted"]
    assert got["after"] == 0  # every needed signature is now in the on-disk cache
    assert got["again"]  # a warm cache starts no helper
    assert got["loaded"] == 1 and got["right"]  # loaded, not compiled, and correct


def test_a_prestarted_helper_is_kept_only_if_it_had_a_core_to_itself(monkeypatch):
    class Proc:
        pid = 12345

    real_cpu_seconds = precompile._cpu_seconds
    monkeypatch.setattr(precompile, "_helper", Proc())
    monkeypatch.delenv(precompile.OPT_OUT, raising=False)
    now = time.monotonic()
    used = {"s": 0.35}
    monkeypatch.setattr(precompile, "_cpu_seconds", lambda pid: used["s"])
    monkeypatch.setattr(precompile, "_spawned_at", now - 0.4)
    assert precompile._got_a_core()  # 0.35 s of CPU in 0.4 s
    used["s"] = 0.1  # a quarter of a core: the host is busy
    assert not precompile._got_a_core()
    monkeypatch.setattr(precompile, "_spawned_at", now - 3.0)
    used["s"] = 0.45  # its start-up done long ago, then waiting for work
    assert precompile._got_a_core()
    used["s"] = 0.1
    monkeypatch.setenv(precompile.OPT_OUT, "1")  # forced
    assert precompile._got_a_core()
    monkeypatch.delenv(precompile.OPT_OUT)
    used["s"] = None  # no /proc: the load rule alone decided
    assert precompile._got_a_core()
    assert (real_cpu_seconds(os.getpid()) or 0) > 0


def test_a_prestarted_helper_is_sent_away_when_little_must_compile(tmp_path):
    code = """
        import json
        from engine.kernels import precompile
        precompile.prestart()
        early = precompile._helper
        got = precompile.start([], "float32", None)  # the trainer's two kernels alone
        print(json.dumps([early is not None, got is None, early.wait(timeout=60) != 0]))
    """
    assert json.loads(_python(code, _env(tmp_path))) == [True, True, True]


def test_no_prestart_once_the_cache_holds_kernels(tmp_path):
    folder = tmp_path / "numba" / "kernels_abc"
    folder.mkdir(parents=True)
    (folder / "optim.adam_update-23.py311.nbi").write_bytes(b"")
    code = """
        from engine.kernels import precompile
        precompile.prestart()
        print(precompile._helper is None)
    """
    assert _python(code, _env(tmp_path)) == "True"


def test_no_helper_when_opted_out(tmp_path):
    code = """
        from engine.kernels import precompile
        print(precompile.start(["relu"], "float32", "sgd") is None)
    """
    assert _python(code, _env(tmp_path, WIREGRAD_PRECOMPILE="0")) == "True"


# ------------------------------------------------------------------ robustness

RACE = """
    import json, sys
    from engine.kernels import precompile
    from engine.kernels import cache_lock
    cache_lock.lock_cache_saves()
    jobs = json.loads(sys.argv[1])
    print(precompile.compile_jobs(jobs))
"""


def test_two_processes_compiling_one_kernel_at_once_leave_a_good_cache(tmp_path):
    env = _env(tmp_path)
    arr = {"a": "float32", "nd": 1, "l": "C"}
    arr64 = {"a": "float64", "nd": 1, "l": "C"}
    jobs = [["engine.kernels.activations", "relu_fwd", [a, a]] for a in (arr, arr64)]
    # the same two signatures in both (same index entries) and in opposite orders
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(RACE), json.dumps(j)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
             for j in (jobs, jobs[::-1])]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [o.strip() for o in outs] == ["2", "2"]
    check = """
        import json, numpy as np
        from engine.kernels import activations
        right = []
        for dtype in (np.float32, np.float64):
            x = np.linspace(-1, 1, 9).astype(dtype)
            out = np.empty_like(x)
            activations.relu_fwd(x, out)
            right.append(bool(np.array_equal(out, np.maximum(x, 0))))
        print(json.dumps([right, sum(activations.relu_fwd._cache_hits.values())]))
    """
    assert json.loads(_python(check, env)) == [[True, True], 2]


def test_a_held_cache_lock_stalls_the_helper_but_not_the_process_it_helps(tmp_path,
                                                                       monkeypatch):
    import fcntl
    import threading

    path = str(tmp_path / ".lock")
    holder = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # e.g. a starved helper in the middle of a save
    saved = []

    def save(patience):
        monkeypatch.setattr(cache_lock, "_patience", patience)
        with cache_lock._locked(path):
            saved.append(patience)

    helped = threading.Thread(target=save, args=(0.05,))
    helped.start()
    helped.join(timeout=30)
    assert saved == [0.05]  # went on without the lock
    helper = threading.Thread(target=save, args=(None,), daemon=True)
    helper.start()
    helper.join(timeout=0.3)
    assert helper.is_alive()  # the helper waits for it
    os.close(holder)
    helper.join(timeout=30)
    assert saved == [0.05, None]


PARENT = """
    import os, sys
    from engine.kernels import precompile
    from engine.graphs import presets
    from engine.core.compile import compile_document
    doc, _ = presets.load("char_gpt")
    program = compile_document(doc, "float32")
    helper = precompile.start([eq.op.name for eq in program.equations], "float32", "adamw")
    print(helper.pid, flush=True)
    sys.stdin.read()  # until the test kills this process
"""


def test_the_helper_ends_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT)], cwd=ROOT,
                              env=_env(tmp_path), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the helper outlived its parent"


def _alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, reaped by init later, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"
