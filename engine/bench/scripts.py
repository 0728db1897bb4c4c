"""The scripts :mod:`engine.bench.benchmark` runs in fresh subprocesses (argv[1]: the parent's
``time.time()`` at launch; each prints one JSON line)."""

FIRST_STEP = """
import json, sys, time
from engine.graphs import presets
from engine.train.trainer import Trainer
doc, path = presets.load("char_gpt")
t = Trainer(doc, base_dir=path.parent, steps=10)
t.train_step()
print(json.dumps({"s": time.time() - float(sys.argv[1])}))
"""

TORCH_FIRST_STEP = """
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from engine.graphs import presets
from engine.core.compile import compile_document
from engine.data.datasets import batcher_for, load_dataset
from engine.core.run import init_weights
from engine.bench.gpt_twin import build_twin
doc, path = presets.load("char_gpt")
program = compile_document(doc)
model = build_twin(doc, init_weights(program.parameters, 0, "float32"))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
text = next(n for n in doc["nodes"] if n["type"] == "text_corpus")
b = batcher_for(load_dataset("text_corpus", text["params"], path.parent, text["id"]),
                text["params"]["batch_size"], 0).next()
logits = model(torch.from_numpy(b["tokens"]))
loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                         torch.from_numpy(b["targets"]).reshape(-1))
loss.backward(); opt.step()
print(json.dumps({"s": time.time() - float(sys.argv[1])}))
"""

IMPORT = """
import json, time
t0 = time.perf_counter()
import {module}
print(json.dumps({{"s": time.perf_counter() - t0}}))
"""

RSS = """
import json, sys
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
steps, threads, which = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import numpy
from engine.graphs import presets
from threadpoolctl import threadpool_limits
threadpool_limits(threads)
if which == "torch":
    import torch
    torch.set_num_threads(threads)
else:
    import numba
    from engine.kernels import attention, elementwise, embedding, loss, norm, optim, softmax
doc, path = presets.load("char_gpt")
from engine.train.trainer import Trainer
trainer = Trainer(doc, base_dir=path.parent, steps=steps)
bare = rss()[0]
if which != "torch":  # Numba's JIT runtime starts with the first kernel: part of import
    optim.sum_of_squares(numpy.ones(4, numpy.float32))
if which == "torch":
    from engine.bench.gpt_twin import build_twin, twin_optimizer, twin_step
    model = build_twin(doc, {**trainer.params, **trainer.state})
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    batcher = next(iter(trainer.batchers.values()))
    del trainer
    import gc; gc.collect()
    step = lambda: twin_step(model, opt, sched, batcher.next(), 1.0)
else:
    step = trainer.train_step
import contextlib
with contextlib.suppress(OSError):  # reset the peak to the current RSS (Linux ≥ 4.0)
    open("/proc/self/clear_refs", "w").write("5")
base = rss()[0]
for _ in range(steps):
    step()
print(json.dumps({"bare_mb": bare, "base_mb": base, "peak_mb": rss()[1]}))
"""

# The editor probe lives in nodegraph (the engine never imports Qt).
EDITOR = ("import runpy; runpy.run_module('nodegraph.startup_probe', run_name='__main__', "
          "alter_sys=False)")
