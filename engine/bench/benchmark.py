"""``wiregrad bench``: Wiregrad against PyTorch CPU on the presets, measured side by side.

Each model is built in both (same float32 weights, batches, optimizer and thread count) and the
two are timed alternately in blocks within one run, so machine noise hits both alike. Start-up
figures (first step with an empty / warm Numba cache, ``import engine``, peak RSS growth, the
editor's first drawn window) run in fresh subprocesses. Results: ``{"cases": {name:
{"wiregrad_ms", "torch_ms", "ratio", ...}}, "machine", "versions"}``; ``ratio`` is Wiregrad
over PyTorch, lower is faster (for sampling it is milliseconds per token; for memory, MiB).

The PyTorch char-GPT step is checked against the reference measured on the issue's machine
(~52 ms, 2 threads); ``within_reference`` says whether it came within ±20 %.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.bench.timing import alternate, case_record, other_programs

ROOT = Path(__file__).resolve().parents[2]
TORCH_GPT_REFERENCE_MS = 52.0


# ------------------------------------------------------------------ training steps


def _with_batch(doc: dict, batch: int | None) -> dict:
    doc = copy.deepcopy(doc)
    if batch:
        from engine.core import registry

        for n in doc["nodes"]:
            if registry.has(n["type"]) and registry.get(n["type"]).category == "data":
                n["params"]["batch_size"] = batch
    return doc


def _trainer(doc: dict):
    from engine.train.trainer import Trainer

    return Trainer(doc, base_dir=ROOT / "presets", steps=100_000)


def _gpt_pair(doc: dict):
    from engine.bench.gpt_twin import twin_step_for

    trainer = _trainer(doc)
    return trainer, twin_step_for(trainer, doc)


def _classifier_pair(doc: dict, twin: Callable):
    from engine.bench.gpt_twin import twin_optimizer
    from engine.bench.twins import classifier_step

    trainer = _trainer(doc)
    model = twin({**trainer.params, **trainer.state})
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    node = next(iter(trainer.batchers))
    shadow = copy.deepcopy(trainer.batchers[node])
    ports = trainer.graph.data_ports[node]
    return trainer, lambda: classifier_step(model, opt, sched, shadow.next(), ports)


def gpt_flops(layers: int, width: int, block: int, vocab: int, batch: int) -> float:
    """Model FLOPs of one training step (forward + backward = 3 × forward): the matmuls
    (24·C² per token per layer, tied head 2·C·V) and causal attention (2·T·C per token per
    layer: half of the full q·kᵀ and p·v)."""
    per_token = layers * (24 * width * width + 2 * block * width) + 2 * width * vocab
    return 3.0 * per_token * batch * block


def sgemm_peak(n: int = 1024, reps: int = 8) -> dict:
    """Best-of GFLOP/s of an n×n float32 matmul, numpy (Wiregrad's BLAS) and torch."""
    import torch

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    res = alternate({"numpy": lambda: a @ b, "torch": lambda: ta @ tb}, 2, reps, 1)
    flop = 2.0 * n**3
    return {k: flop / (v["min"] * 1e-3) / 1e9 for k, v in res.items()} | {
        "numpy_ms": res["numpy"]["median"], "torch_ms": res["torch"]["median"]}


def train_cases(quick: bool, log) -> dict:
    from engine.graphs import builders as templates
    from engine.graphs import presets

    rounds, per = (2, 3) if quick else (6, 10)
    cases = {}
    peak = sgemm_peak(reps=3 if quick else 8)
    cases["sgemm_1024"] = case_record({"median": peak["numpy_ms"], "min": peak["numpy_ms"],
                                 "max": peak["numpy_ms"], "n": 1},
                                {"median": peak["torch_ms"], "min": peak["torch_ms"],
                                 "max": peak["torch_ms"], "n": 1},
                                numpy_gflops=peak["numpy"], torch_gflops=peak["torch"])
    peak_gflops = max(peak["numpy"], peak["torch"])
    log(f"sgemm 1024: numpy {peak['numpy']:.0f} GFLOP/s, torch {peak['torch']:.0f} GFLOP/s")
    gpts = [("gpt_step", presets.load("char_gpt")[0], (4, 128, 64, 12)),
            ("gpt6x256_step", templates.char_gpt(layers=6, heads=8, width=256, block=64,
                                                 batch=12), (6, 256, 64, 12))]
    for name, doc, (layers, width, block, batch) in gpts:
        trainer, torch_step = _gpt_pair(doc)
        res = alternate({"w": trainer.train_step, "t": torch_step}, rounds, per, 3)
        vocab = trainer.params["wte"].shape[0]
        flop = gpt_flops(layers, width, block, vocab, batch)
        extra = {"model_gflop": flop / 1e9, "sgemm_peak_gflops": peak_gflops,
                 "wiregrad_mfu": flop / (res["w"]["median"] * 1e-3) / 1e9 / peak_gflops,
                 "torch_mfu": flop / (res["t"]["median"] * 1e-3) / 1e9 / peak_gflops}
        if name == "gpt_step":
            extra["torch_reference_ms"] = TORCH_GPT_REFERENCE_MS
            extra["within_reference"] = bool(
                abs(res["t"]["median"] / TORCH_GPT_REFERENCE_MS - 1.0) <= 0.2)
        extra["wiregrad_steps"] = trainer.split_note  # batch split over the cores or not
        cases[name] = case_record(res["w"], res["t"], **extra)
        log(_line(name, cases[name]))
        del trainer, torch_step
    cases["gpt_step_busy"] = busy_gpt_case(rounds, per)
    log(_line("gpt_step_busy", cases["gpt_step_busy"]))
    from engine.bench import cnn_cases
    from engine.bench.twins import mlp_twin

    doc = _with_batch(presets.load("spiral_mlp")[0], 256)
    trainer, torch_step = _classifier_pair(doc, mlp_twin)
    res = alternate({"w": trainer.train_step, "t": torch_step}, rounds, per * 3, 5)
    cases["mlp_step"] = case_record(res["w"], res["t"], batch=256,
                                    wiregrad_steps=trainer.split_note)
    log(_line("mlp_step", cases["mlp_step"]))
    cases.update(cnn_cases.bench_cases(quick, log, _line))
    from engine.bench import lstm_case

    cases.update(lstm_case.bench_cases(quick, log, sys.modules[__name__]))
    return cases


def busy_gpt_case(rounds: int, per: int) -> dict:
    """The char-GPT step against PyTorch's while another program keeps a core busy (issue
    20 §4: the margin must hold on a busy host). Both sides are timed under the same load;
    the trainer decides its batch split at its first step, under the load too."""
    from engine.graphs import presets

    with other_programs(1):
        trainer, torch_step = _gpt_pair(presets.load("char_gpt")[0])
        res = alternate({"w": trainer.train_step, "t": torch_step}, rounds, per, 3)
    return case_record(res["w"], res["t"], other_programs=1,
                       wiregrad_steps=trainer.split_note)


# ------------------------------------------------------------------ sampling


def sample_case(quick: bool, log) -> dict:

    from engine.bench.gpt_twin import build_twin, gpt_config
    from engine.bench.twins import TorchSampler
    from engine.graphs import presets
    from engine.sample.sampler import Sampler

    doc, _ = presets.load("char_gpt")
    cfg = gpt_config(doc)
    sampler = Sampler(doc, None)
    model = build_twin(doc, {**sampler.weights, **sampler.state})
    theirs = TorchSampler(model, cfg["block_size"], cfg["heads"])
    n = 100 if quick else 400
    prompt = list(sampler.codec.encode("ROMEO:\n"))

    def ours():
        "".join(sampler.generate("ROMEO:\n", n, temperature=0.8, seed=0))

    res = alternate({"w": ours, "t": lambda: theirs.generate(prompt, n, 0.8, 0)},
                    2 if quick else 3, 1, 1)
    per_tok = {k: {s: v[s] / n for s in ("median", "min", "max")} | {"n": v["n"]}
               for k, v in res.items()}
    case = case_record(per_tok["w"], per_tok["t"], tokens=n,
                 wiregrad_tokens_per_s=1e3 / per_tok["w"]["median"],
                 torch_tokens_per_s=1e3 / per_tok["t"]["median"], unit="ms per token")
    log(_line("sample", case))
    return case


# ------------------------------------------------------------------ subprocesses

def _child(module: str, *args, env: dict | None = None, timeout: float = 600) -> dict:
    """Run ``python -m <module> <start time> <args…>`` in a fresh process; its last stdout
    line is JSON (the bench probes: engine.bench.first_step, torch_first_step and rss, and
    the editor's nodegraph.startup_probe)."""
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", module, str(start), *map(str, args)],
                          capture_output=True, text=True, env=full, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def import_ms(module: str, env: dict | None = None) -> float:
    """Milliseconds ``import <module>`` takes in a fresh interpreter (its cumulative time as
    ``python -X importtime`` reports it; the interpreter's own start is not counted)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=300, cwd=ROOT)
    for line in proc.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e3
    raise RuntimeError(f"no import time for {module}:\n{proc.stderr[-2000:]}")


def _fixed(ms: float) -> dict:
    return {"median": ms, "min": ms, "max": ms, "n": 1}


def fill_cache(preset: str, env: dict) -> None:
    """Compile every kernel *preset*'s first step calls into *env*'s kernel cache: a cold
    process ends while its cold-start helper still compiles (its first steps ran the numpy
    twins, engine.kernels.cold), so the warm case is measured after a process that compiles
    them itself (no helper)."""
    _child("engine.bench.first_step", preset, env={**env, "WIREGRAD_PRECOMPILE": "0"})


def startup_cases(quick: bool, threads: int, log) -> dict:
    cases = {}
    thread_env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                  "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="wiregrad-bench-") as home:
        env = {**thread_env, "WIREGRAD_HOME": home,
               "NUMBA_CACHE_DIR": str(Path(home) / "cache" / "numba")}
        cold = _child("engine.bench.first_step", env=env)["s"] * 1e3
        fill_cache("char_gpt", env)
        warm = _child("engine.bench.first_step", env=env)["s"] * 1e3
        torch_first = _child("engine.bench.torch_first_step", threads, env=env)["s"] * 1e3
        cases["first_step_cold_cache"] = case_record(_fixed(cold), _fixed(torch_first),
                                              note="process start to first finished step")
        cases["first_step_warm_cache"] = case_record(_fixed(warm), _fixed(torch_first),
                                              note="process start to first finished step")
        log(_line("first_step_cold_cache", cases["first_step_cold_cache"]))
        log(_line("first_step_warm_cache", cases["first_step_warm_cache"]))
        reps = 3 if quick else 5
        imp = {m: statistics.median(import_ms(m, env) for _ in range(reps))
               for m in ("engine", "torch")}
        cases["import"] = case_record(_fixed(imp["engine"]), _fixed(imp["torch"]),
                                note="import engine vs import torch")
        log(_line("import", cases["import"]))
        steps = 40 if quick else 500
        mem = {w: _child("engine.bench.rss", steps, threads, w, env=env)
               for w in ("wiregrad", "torch")}
        grow = {w: m["peak_mb"] - m["base_mb"] for w, m in mem.items()}
        bare = {w: m["peak_mb"] - m["bare_mb"] for w, m in mem.items()}
        cases["peak_rss_growth"] = {
            "wiregrad_ms": None, "torch_ms": None,
            "ratio": grow["wiregrad"] / grow["torch"] if grow["torch"] > 0 else None,
            "wiregrad_mb": grow["wiregrad"], "torch_mb": grow["torch"], "steps": steps,
            "wiregrad_base_mb": mem["wiregrad"]["base_mb"],
            "torch_base_mb": mem["torch"]["base_mb"],
            "wiregrad_mb_with_jit_start": bare["wiregrad"],
            "ratio_with_jit_start": bare["wiregrad"] / bare["torch"] if bare["torch"] > 0
            else None,
            "note": "baseline after import; for Wiregrad import includes starting Numba's JIT "
                    "runtime (first kernel call); *_with_jit_start counts it as growth",
            "unit": "MiB"}
        log(f"peak_rss_growth      wiregrad {grow['wiregrad']:8.1f} MiB   torch "
            f"{grow['torch']:8.1f} MiB   ({steps} char-GPT steps)")
        try:
            editor = _child("nodegraph.startup_probe",
                            env={**env, "QT_QPA_PLATFORM": "offscreen"},
                            timeout=120)["s"] * 1e3
            cases["editor_start"] = case_record(_fixed(editor), None,
                                          note="process start to a drawn window (offscreen)")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            cases["editor_start"] = {"wiregrad_ms": None, "torch_ms": None, "ratio": None,
                                     "error": str(exc)[-300:]}
        log(_line("editor_start", cases["editor_start"]))
    return cases


# ------------------------------------------------------------------ the run


def _line(name: str, case: dict) -> str:
    def ms(v):
        return f"{v:9.2f} ms" if v is not None else "        -   "

    ratio = f"{case['ratio']:.2f}" if case.get("ratio") is not None else "-"
    return f"{name:22s} wiregrad {ms(case['wiregrad_ms'])}   torch {ms(case['torch_ms'])}" \
           f"   ratio {ratio}"


def _host_cpu_name() -> str:
    """LLVM's name for this host's CPU (``znver3``, ``znver4``, ``skylake-avx512`` …)."""
    import llvmlite.binding as llvm

    return str(llvm.get_host_cpu_name())


def machine_info(threads: int) -> tuple[dict, dict]:
    import numba
    import threadpoolctl
    import torch

    from engine import __version__

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from engine.kernels import conv_direct

    # the micro-architecture LLVM compiles the kernels for and its vector width: hosts that
    # all read "AMD EPYC" differ there (AVX2 or AVX-512), and so do their figures
    llvm_cpu = numba.config.CPU_NAME or _host_cpu_name()  # type: ignore[attr-defined]
    machine = {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
               "threads": threads, "llvm_cpu": llvm_cpu,
               "avx512": conv_direct.wide_registers(),
               "direct_conv_block": [conv_direct.PIXELS, conv_direct.LANES]}
    blas = [{k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                     "threading_layer")}
            for lib in threadpoolctl.threadpool_info()]
    versions = {"wiregrad": __version__, "python": platform.python_version(),
                "numpy": np.__version__, "numba": numba.__version__,
                "torch": torch.__version__, "threadpools": blas}
    return machine, versions


def run(quick: bool = False, threads: int | None = None, log=print) -> dict:
    """The whole benchmark; returns the JSON-able result."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    with threadpool_limits(limits=threads):
        machine, versions = machine_info(threads)
        log(f"wiregrad bench{' --quick' if quick else ''}: {threads} thread(s), "
            f"{machine['cpu']} ({machine['llvm_cpu']}, "
            f"{'AVX-512' if machine['avx512'] else 'no AVX-512'})")
        cases = train_cases(quick, log)
        cases["sample"] = sample_case(quick, log)
        from engine.bench import seq2seq_bench, word_gpt_bench

        for family in (seq2seq_bench, word_gpt_bench):  # *_step, *_decode / *_sample
            cases.update(family.bench_cases(quick, log, sys.modules[__name__]))
    cases.update(startup_cases(quick, threads, log))
    from engine.bench import first_step_cases  # first_step_spiral_*, editor_train_rate

    cases.update(first_step_cases.bench_cases(quick, threads, log, sys.modules[__name__]))
    return {"cases": cases, "machine": machine, "versions": versions,
            "quick": quick, "seconds": time.perf_counter() - t0}


def markdown_table(result: dict) -> str:
    """The cases as a Markdown table (bench/RESULTS.md)."""
    def fmt(v, digits=2):
        return "–" if v is None else f"{v:,.{digits}f}"

    rows = ["| case | Wiregrad | PyTorch | ratio (W/T) | W min–max | T min–max |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, c in result["cases"].items():
        unit = c.get("unit", "ms")
        w, t = c.get("wiregrad_ms"), c.get("torch_ms")
        if unit == "MiB":
            w, t = c.get("wiregrad_mb"), c.get("torch_mb")
        spread = [f"{fmt(c.get(f'{k}_min_ms'))}–{fmt(c.get(f'{k}_max_ms'))}"
                  if c.get(f"{k}_min_ms") is not None else "" for k in ("wiregrad", "torch")]
        rows.append(f"| {name} ({unit}) | {fmt(w)} | {fmt(t)} | {fmt(c.get('ratio'))} | "
                    f"{spread[0]} | {spread[1]} |")
    return "\n".join(rows)


def provenance(load_before: tuple[float, float, float]) -> dict:
    """What made this result: the command line, the commit and the host's load around it."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[2], check=False)
    return {"command": " ".join(["wiregrad", "bench", *sys.argv[2:]])
            if sys.argv[1:2] == ["bench"] else " ".join(sys.argv),
            "commit": commit.stdout.strip() or None,
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def bench_command(args) -> int:
    from engine.base.errors import WiregradError
    from engine.bench.gpt_twin import _torch

    _torch()
    if args.threads is not None and args.threads < 1:
        raise WiregradError("--threads must be at least 1")
    load_before = os.getloadavg()
    result = run(quick=args.quick, threads=args.threads)
    result["provenance"] = provenance(load_before)
    print()
    print(markdown_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
