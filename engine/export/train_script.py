"""The ``train.py`` of a PyTorch project export: a fixed script plus the graph's CONFIG.

The script mirrors Wiregrad's trainer: the same global batches in the same order (shuffled
epochs seeded per data node; random text windows seeded per step), the loss, the optimizer
with its weight-decay set, the learning-rate schedule with warm-up, and global-norm clipping.
Under ``torchrun`` each process takes an equal slice of every global batch and its loss is
weighted so that DistributedDataParallel's gradient average equals the global batch's
gradient: a 2-process run follows a 1-process run step for step. On a seq2seq graph (a
``sequence_pairs`` source) each evaluation also prints ``exact_match``: greedy decoding of
validation pairs spread evenly, the share whose whole output equals the target, as
``wiregrad train`` records it.
"""

from __future__ import annotations

import pprint

SCRIPT = r'''
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import Model  # noqa: E402


# ------------------------------------------------------------------ data (as Wiregrad batches)


class ExampleBatcher:
    """Shuffled mini-batches; epoch e visits the examples in permutation(seed, e)."""

    def __init__(self, arrays: dict, batch_size: int, seed: int) -> None:
        self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
        self.n = len(next(iter(arrays.values())))
        self.epoch, self.pos = 0, 0
        self.perm = self._order()

    def _order(self):
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch]).permutation(self.n)

    def next(self) -> dict:
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += len(idx)
        if self.pos == self.n:
            self.epoch, self.pos = self.epoch + 1, 0
            self.perm = self._order()
        return {k: v[idx] for k, v in self.arrays.items()}


def windows(stream, starts, block: int) -> dict:
    chunk = stream[starts[:, None] + np.arange(block + 1)[None, :]].astype(np.int64)
    return {"tokens": chunk[:, :-1], "targets": chunk[:, 1:]}


class WindowBatcher:
    """Random windows of a token stream, seeded per step."""

    def __init__(self, stream, block: int, batch_size: int, seed: int) -> None:
        self.stream, self.block, self.batch_size, self.seed = stream, block, batch_size, seed
        self.step = 0

    def next(self) -> dict:
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.step])
        self.step += 1
        starts = rng.integers(0, len(self.stream) - self.block - 1, size=self.batch_size)
        return windows(self.stream, starts, self.block)


def load_data() -> dict:
    with np.load(os.path.join(HERE, "data.npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    data = {}
    for node, spec in CONFIG["data"].items():
        split = {s: {k.split("/")[2]: v for k, v in arrays.items()
                     if k.startswith(f"{node}/{s}/")} for s in ("train", "val")}
        data[node] = split
    return data


def batchers(data: dict) -> dict:
    out = {}
    for node, spec in CONFIG["data"].items():
        if spec["kind"] == "windows":
            out[node] = WindowBatcher(data[node]["train"]["stream"], spec["block_size"],
                                      spec["batch_size"], spec["seed"])
        else:
            out[node] = ExampleBatcher(data[node]["train"], spec["batch_size"], spec["seed"])
    return out


def eval_batches(data: dict, node: str):
    spec = CONFIG["data"][node]
    limit = CONFIG["eval_batches"]
    if spec["kind"] == "windows":
        stream, block, size = data[node]["val"]["stream"], spec["block_size"], spec["batch_size"]
        count = limit or max(1, min(50, (len(stream) - block - 1) // (block * size)))
        rng = np.random.default_rng([spec["val_seed"] & 0xFFFFFFFF, 0x5EED])
        for _ in range(count):
            yield windows(stream, rng.integers(0, len(stream) - block - 1, size=size), block)
        return
    arrays = data[node]["val"]
    n = len(next(iter(arrays.values())))
    for i, start in enumerate(range(0, n, spec["batch_size"])):
        if limit and i >= limit:
            return
        yield {k: v[start:start + spec["batch_size"]] for k, v in arrays.items()}


# ------------------------------------------------------------------ loss, optimizer, schedule


def loss_elements(labels: torch.Tensor) -> int:
    """How many terms the loss averages over (positions not ignored, for cross-entropy)."""
    if CONFIG["loss"]["kind"] == "cross_entropy":
        return int((labels != CONFIG["loss"]["ignore_index"]).sum())
    return labels.numel()


def loss_fn(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    spec = CONFIG["loss"]
    if spec["kind"] == "cross_entropy":
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), labels.reshape(-1),
                               ignore_index=spec["ignore_index"],
                               label_smoothing=spec["label_smoothing"])
    if spec["kind"] == "mse":
        return F.mse_loss(pred, labels)
    return F.binary_cross_entropy_with_logits(pred, labels)


def build_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    o = CONFIG["optimizer"]
    named = dict(model.named_parameters())
    decay = [p for n, p in named.items() if n in o["decay"]]
    rest = [p for n, p in named.items() if n not in o["decay"]]
    groups = [{"params": decay, "weight_decay": o["weight_decay"]},
              {"params": rest, "weight_decay": 0.0}]
    kind = o["algorithm"]
    if kind in ("adam", "adamw"):
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        return cls(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"],
                               nesterov=o["nesterov"])
    return torch.optim.RMSprop(groups, lr=o["lr"], alpha=o["alpha"], eps=o["eps"],
                               momentum=o["momentum"])


def learning_rate(step: int, total: int) -> float:
    """Linear warm-up lr·(t+1)/(w+1), then constant, step decay or cosine to min_lr."""
    o = CONFIG["optimizer"]
    lr, warmup = o["lr"], o["warmup"]
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if o["schedule"] == "constant":
        return lr
    if o["schedule"] == "step":
        return lr * o["gamma"] ** ((step - warmup) // max(1, o["step_size"]))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return o["min_lr"] + (lr - o["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------ one step


def to_tensor(array, dtype, device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.to(device) if t.dtype in (torch.int64, torch.int32) else t.to(device, dtype)


def shard(array, rank: int, world: int):
    return np.array_split(array, world)[rank] if world > 1 else array


def train_step(model, optimizer, batches: dict, lr: float, dtype, device,
               rank: int = 0, world: int = 1) -> float:
    """One optimizer step on a global batch (this process's slice of it); the global loss."""
    node, port = CONFIG["labels"]
    labels_all = to_tensor(batches[node][port], dtype, device)
    inputs = [to_tensor(shard(batches[n][p], rank, world), dtype, device)
              for n, p in CONFIG["inputs"]]
    labels = to_tensor(shard(batches[node][port], rank, world), dtype, device)
    for group in optimizer.param_groups:
        group["lr"] = lr
    pred = model(*inputs)
    pred = pred[0] if isinstance(pred, tuple) else pred
    count, total = loss_elements(labels), loss_elements(labels_all)
    loss = loss_fn(pred, labels) if count else pred.sum() * 0.0
    # DDP averages gradients over processes: weight each slice so the average is the
    # gradient of the mean loss over the whole global batch.
    (loss * (count * world / max(total, 1))).backward()
    clip = CONFIG["optimizer"]["clip_norm"]
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    value = loss.detach() * count / max(total, 1)
    if world > 1:
        dist.all_reduce(value)
    return float(value)


@torch.no_grad()
def evaluate(model, data: dict, dtype, device) -> float:
    model.eval()
    node, port = CONFIG["labels"]
    nodes = list(CONFIG["data"])
    iters = {n: eval_batches(data, n) for n in nodes}
    total, count = 0.0, 0
    while True:
        try:
            batches = {n: next(it) for n, it in iters.items()}
        except StopIteration:
            break
        inputs = [to_tensor(batches[n][p], dtype, device) for n, p in CONFIG["inputs"]]
        pred = model(*inputs)
        pred = pred[0] if isinstance(pred, tuple) else pred
        labels = to_tensor(batches[node][port], dtype, device)
        n = len(labels)
        total += float(loss_fn(pred, labels)) * n
        count += n
    model.train()
    return total / max(count, 1)


# ------------------------------------------------------------------ seq2seq: exact match


def spread(n: int, k: int):
    """*k* indices spread evenly over range(n) (all when n <= k): Wiregrad's choice."""
    if n <= k:
        return np.arange(n)
    return np.linspace(0, n - 1, k).round().astype(np.int64)


def visible(ids, spec: dict) -> list:
    """The ids of one output up to its end token, without pad / begin (its text's tokens)."""
    out = []
    for i in ids:
        if int(i) == spec["eos"]:
            break
        if int(i) >= spec["specials"]:
            out.append(int(i))
    return out


@torch.no_grad()
def greedy_outputs(model, batch: dict, spec: dict, dtype, device):
    """Greedy outputs (B, T) of a validation *batch*, as Wiregrad's full recomputation: at
    step t the whole decoder runs over the tokens chosen so far, padded to T with the pad
    token like a training batch, and position t's logits pick the next token. No causal
    shortcut is taken, so a decoder whose self-attention sees later positions
    (``causal`` off) gets the figure `wiregrad train` records too."""
    feeds = [to_tensor(batch[p], dtype, device) for _, p in CONFIG["inputs"]]
    tokens = torch.full(batch["target_out"].shape, spec["pad"], dtype=torch.int64,
                        device=device)  # (B, T)
    tokens[:, 0] = spec["bos"]
    feeds[spec["target_in"]] = tokens
    out = torch.full_like(tokens, spec["eos"])
    model.eval()
    for t in range(tokens.shape[1]):
        logits = model(*feeds)
        logits = logits[0] if isinstance(logits, tuple) else logits  # (B, T, V)
        out[:, t] = logits[:, t].argmax(-1)
        if t + 1 < tokens.shape[1]:
            tokens[:, t + 1] = out[:, t]
        if bool((out[:, :t + 1] == spec["eos"]).any(1).all()):
            break
    model.train()
    return out.cpu().numpy()


def exact_match(model, data: dict, dtype, device):
    """Seq2seq graphs: the share of validation pairs (``pairs`` of them, spread evenly)
    whose greedy output (:func:`greedy_outputs`) equals the target. None for other graphs."""
    spec = CONFIG.get("seq2seq")
    if not spec:
        return None
    val = data[spec["node"]]["val"]
    rows = spread(len(val["target_out"]), spec["pairs"])
    if len(rows) == 0:
        return None
    batch = {k: v[rows] for k, v in val.items()}
    outputs = greedy_outputs(model, batch, spec, dtype, device)
    right = sum(visible(o, spec) == visible(g, spec)
                for o, g in zip(outputs, batch["target_out"]))
    return right / len(rows)


def validation(model, data: dict, dtype, device) -> str:
    """``val_loss X`` (and ``, exact_match Y`` for a seq2seq graph)."""
    text = f"val_loss {evaluate(model, data, dtype, device):.4g}"
    share = exact_match(model, data, dtype, device)
    return text if share is None else f"{text}, exact_match {share:.4f}"


def save_checkpoint(model, path: str, step: int) -> None:
    """Parameters and state under Wiregrad's names, written atomically (rank 0 only)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = f"{path}.tmp{os.getpid()}"
    save_file(tensors, tmp, metadata={"step": str(step), "source": "wiregrad torch export"})
    os.replace(tmp, path)


# ------------------------------------------------------------------ main


def main(argv=None) -> None:
    name = (CONFIG["name"] or "the model").replace("%", "%%")
    parser = argparse.ArgumentParser(description=f"Train {name}.")
    parser.add_argument("--steps", type=int, default=CONFIG["steps"], help="optimizer steps")
    parser.add_argument("--out", default=os.path.join(HERE, "out"),
                        help="folder for ckpt.safetensors and metrics.jsonl")
    parser.add_argument("--weights", default=os.path.join(HERE, "weights.safetensors"),
                        help="starting weights (Wiregrad names)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=CONFIG["dtype"])
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if world > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(CONFIG["seed"] + rank)

    model = Model()
    model.load_state_dict(load_file(args.weights))
    model.to(device=device, dtype=dtype)
    optimizer = build_optimizer(model)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None)
    data = load_data()
    feeds = batchers(data)
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "ckpt.safetensors")
    log = open(os.path.join(args.out, "metrics.jsonl"), "w") if rank == 0 else None
    start = time.time()
    every = CONFIG["checkpoint_every"]
    for step in range(args.steps):
        lr = learning_rate(step, args.steps)
        batches = {node: b.next() for node, b in feeds.items()}
        loss = train_step(net, optimizer, batches, lr, dtype, device, rank, world)
        if log is not None:
            log.write(json.dumps({"step": step + 1, "loss": loss, "lr": lr}) + "\n")
            if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
                print(f"step {step + 1}: loss {loss:.4g}, lr {lr:.2e}, "
                      f"{time.time() - start:.1f}s", flush=True)
            if every and (step + 1) % every == 0:
                save_checkpoint(model, ckpt, step + 1)
        eval_every = CONFIG["eval_every"]
        if rank == 0 and eval_every and (step + 1) % eval_every == 0:
            print(f"step {step + 1}: {validation(model, data, dtype, device)}", flush=True)
    if rank == 0:
        save_checkpoint(model, ckpt, args.steps)
        log.close()
        print(f"trained {args.steps} steps; checkpoint: {ckpt}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''


def train_source(config: dict) -> str:
    """The text of ``train.py`` for *config* (see ``torch_project.training_plan``)."""
    from engine.export.torch_codegen import doc_text

    head = (f'"""Train \\"{doc_text(config["name"] or "the model")}\\" (exported from Wiregrad) '
            "with PyTorch.\n"
            "\n"
            "    python train.py [--steps N] [--out DIR]\n"
            "    torchrun --standalone --nproc-per-node=N train.py [--steps N] [--out DIR]\n"
            "\n"
            "Needs torch, numpy and safetensors (not Wiregrad). The loss, optimizer, schedule,\n"
            "clipping and data (data.npz) are the graph's, batched in the same order as\n"
            "`wiregrad train`. A seq2seq graph's evaluations also print exact_match (greedy\n"
            "decoding of validation pairs). Under torchrun each process trains an equal\n"
            "slice of every global batch with DistributedDataParallel (gloo on CPU, nccl on\n"
            "GPU); rank 0 writes OUT/ckpt.safetensors (atomically) and OUT/metrics.jsonl.\n"
            "Checkpoints use Wiregrad's parameter names: `wiregrad evaluate GRAPH --weights "
            "OUT/ckpt.safetensors`.\n"
            '"""\n')
    body = SCRIPT.replace("from model import Model  # noqa: E402\n",
                          "from model import Model  # noqa: E402\n\n"
                          "CONFIG = " + pprint.pformat(config, width=96, sort_dicts=False)  # repr
                          + "\n", 1)
    return head + body
