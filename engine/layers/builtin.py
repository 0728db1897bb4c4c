"""The built-in layer library, named like PyTorch's modules.

Each layer is a plain subgraph definition — the same format as a document's ``layers`` block —
registered so the palette and the compiler find it, and embedded into documents that use it.
Inner params may reference the layer's params (``"$in_features"``, ``"$k*$k"``); a node with
``"when": "$bias"`` is muted when the param is false, passing ``bypass`` inputs through.
"""

from __future__ import annotations

from engine.core.params import layer_params
from engine.core.registry import OpSpec, Port, register


def edge(src: str, dst: str) -> dict:
    """``"node:port"`` → ``"node:port"`` shorthand for definitions written in code."""
    (sn, sp), (dn, dp) = src.split(":"), dst.split(":")
    return {"src": {"node": sn, "port": sp}, "dst": {"node": dn, "port": dp}}


def node(node_id: str, type_name: str, **params) -> dict:
    return {"id": node_id, "type": type_name, "params": params}


def param(name: str, kind: str, default, doc: str, **extra) -> dict:
    return {"name": name, "kind": kind, "default": default, "doc": doc, **extra}


def register_layer(name: str, definition: dict) -> OpSpec:
    """Register *definition* as the layer type *name*."""
    return register(OpSpec(
        name=name,
        category="layer",
        doc=definition["doc"],
        inputs=[Port(p["name"], p.get("dtype", "float")) for p in definition["inputs"]],
        outputs=[Port(p["name"]) for p in definition["outputs"]],
        params=layer_params(definition),
        layer=definition,
        family="layers",
    ))


BIAS = param("bias", "bool", True, "Learn an additive bias.")
INIT = param("init", "choice", "fan_in_uniform",
             "Weight initialiser: PyTorch's default U(±1/√fan_in), or normal(0, init_std).",
             choices=["fan_in_uniform", "normal"])
INIT_STD = param("init_std", "float", 0.02, "Standard deviation for init = normal.", min=0.0)
PROJ_STD = param("proj_init_std", "float", 0.02,
                 "Standard deviation of the output projections for init = normal (GPT-2 "
                 "scales it by 1/√(2·layers)).", min=0.0)
X_IN = [{"name": "x", "dtype": "float"}]


def _out(node_id: str, port: str = "out", name: str = "y") -> list[dict]:
    return [{"name": name, "node": node_id, "port": port}]


LINEAR = {
    "doc": "Fully connected layer: y = x Wᵀ + b.\n\n"
           "W is stored (out_features, in_features) like PyTorch; x may have any leading axes "
           "(batch, sequence).",
    "params": [
        param("in_features", "int", 16, "Size of the last axis of x.", min=1),
        param("out_features", "int", 16, "Size of the last axis of y.", min=1),
        BIAS, INIT, INIT_STD,
    ],
    "inputs": X_IN,
    "outputs": _out("add"),
    "nodes": [
        node("weight", "parameter", shape=["$out_features", "$in_features"], init="$init",
             std="$init_std"),
        {**node("bias", "parameter", shape=["$out_features"], init="fan_in_uniform",
                fan_in="$in_features", decay=False), "when": "$bias"},
        node("matmul", "matmul", transpose_b=True),
        {**node("add", "add"), "when": "$bias", "bypass": {"out": "a"}},
    ],
    "edges": [edge("$in:x", "matmul:a"), edge("weight:out", "matmul:b"),
              edge("matmul:out", "add:a"), edge("bias:out", "add:b")],
}

MLP = {
    "doc": "Two-layer perceptron: Linear → activation → Linear.\n\n"
           "The transformer's feed-forward block with GELU and hidden = 4 × width.",
    "params": [
        param("in_features", "int", 16, "Input width.", min=1),
        param("hidden_features", "int", 64, "Hidden width.", min=1),
        param("out_features", "int", 16, "Output width.", min=1),
        param("activation", "choice", "gelu", "Non-linearity between the layers.",
              choices=["relu", "gelu", "tanh", "silu", "sigmoid"]),
        BIAS, INIT, INIT_STD, PROJ_STD,
    ],
    "inputs": X_IN,
    "outputs": _out("proj", "y"),
    "nodes": [
        node("fc", "Linear", in_features="$in_features", out_features="$hidden_features",
             bias="$bias", init="$init", init_std="$init_std"),
        node("act", "$activation"),
        node("proj", "Linear", in_features="$hidden_features", out_features="$out_features",
             bias="$bias", init="$init", init_std="$proj_init_std"),
    ],
    "edges": [edge("$in:x", "fc:x"), edge("fc:y", "act:x"), edge("act:out", "proj:x")],
}

CONV2D = {
    "doc": "2-D convolution over NCHW images: y = conv(x, W) + b.\n\n"
           "W is (out_channels, in_channels / groups, k, k); stride, padding, dilation and "
           "groups as in PyTorch's nn.Conv2d (groups = in_channels: a depthwise convolution).",
    "params": [
        param("in_channels", "int", 1, "Channels of x.", min=1),
        param("out_channels", "int", 8, "Channels of y.", min=1),
        param("kernel_size", "int", 3, "Square kernel size.", min=1),
        param("stride", "int", 1, "Step between windows.", min=1),
        param("padding", "int", 0, "Zero padding on each side.", min=0),
        param("dilation", "int", 1, "Spacing between kernel taps.", min=1),
        param("groups", "int", 1, "Channel groups: in_channels and out_channels divide by it "
              "(in_channels: depthwise).", min=1),
        BIAS,
    ],
    "inputs": X_IN,
    "outputs": _out("conv"),
    "nodes": [
        node("weight", "parameter",
             shape=["$out_channels", "$in_channels//$groups", "$kernel_size", "$kernel_size"],
             init="fan_in_uniform"),
        {**node("bias", "parameter", shape=["$out_channels"], init="fan_in_uniform",
                fan_in="$in_channels//$groups*$kernel_size*$kernel_size", decay=False),
         "when": "$bias"},
        node("conv", "conv2d", stride="$stride", padding="$padding", dilation="$dilation",
             groups="$groups"),
    ],
    "edges": [edge("$in:x", "conv:x"), edge("weight:out", "conv:weight"),
              edge("bias:out", "conv:bias")],
}


def _pool(op: str, what: str) -> dict:
    return {
        "doc": f"2-D {what} pooling over NCHW images.",
        "params": [
            param("kernel_size", "int", 2, "Square window size.", min=1),
            param("stride", "int", 2, "Step between windows (usually the kernel size).", min=1),
            param("padding", "int", 0, "Padding on each side.", min=0),
        ],
        "inputs": X_IN,
        "outputs": _out("pool"),
        "nodes": [node("pool", op, kernel="$kernel_size", padding="$padding",
                       stride="$stride")],
        "edges": [edge("$in:x", "pool:x")],
    }


FLATTEN = {
    "doc": "Flatten every axis after the batch: (B, C, H, W) → (B, C·H·W).",
    "params": [],
    "inputs": X_IN,
    "outputs": _out("reshape"),
    "nodes": [node("reshape", "reshape", shape=["B", -1])],
    "edges": [edge("$in:x", "reshape:x")],
}


def _batch_norm(dims: str) -> dict:
    return {
        "doc": f"Batch normalisation over {dims}: batch statistics while training (running "
               "averages kept as state), running statistics in evaluation.",
        "params": [
            param("num_features", "int", 16, "Channels (axis 1).", min=1),
            param("eps", "float", 1e-5, "Added to the variance.", min=0.0),
            param("momentum", "float", 0.1, "Running-average update rate.", min=0.0, max=1.0),
        ],
        "inputs": X_IN,
        "outputs": _out("norm"),
        "nodes": [
            node("weight", "parameter", shape=["$num_features"], init="ones", decay=False),
            node("bias", "parameter", shape=["$num_features"], init="zeros", decay=False),
            node("norm", "batch_norm", eps="$eps", momentum="$momentum"),
        ],
        "edges": [edge("$in:x", "norm:x"), edge("weight:out", "norm:weight"),
                  edge("bias:out", "norm:bias")],
    }


EMBEDDING = {
    "doc": "Embedding table: integer ids → learned vectors (ids (…) → (…, embedding_dim)).",
    "params": [
        param("num_embeddings", "int", 65, "Vocabulary size.", min=1),
        param("embedding_dim", "int", 32, "Vector width.", min=1),
        param("init_std", "float", 1.0, "Standard deviation of the initial vectors.", min=0.0),
    ],
    "inputs": [{"name": "ids", "dtype": "int"}],
    "outputs": _out("lookup"),
    "nodes": [
        node("weight", "parameter", shape=["$num_embeddings", "$embedding_dim"], init="normal",
             std="$init_std"),
        node("lookup", "embedding"),
    ],
    "edges": [edge("$in:ids", "lookup:ids"), edge("weight:out", "lookup:weight")],
}

POSITIONAL_EMBEDDING = {
    "doc": "Learned positional embedding: adds a vector per position to x (B, T, C).\n\n"
           "Positions 0…T−1 index a (block_size, embedding_dim) table; longer sequences are "
           "refused with a clear error.",
    "params": [
        param("block_size", "int", 64, "Longest sequence.", min=1),
        param("embedding_dim", "int", 32, "Vector width (C).", min=1),
        param("init_std", "float", 1.0, "Standard deviation of the initial vectors.", min=0.0),
    ],
    "inputs": X_IN,
    "outputs": _out("add"),
    "nodes": [
        node("positions", "positions", axis=1, limit="$block_size"),
        node("weight", "parameter", shape=["$block_size", "$embedding_dim"], init="normal",
             std="$init_std"),
        node("lookup", "embedding"),
        node("add", "add"),
    ],
    "edges": [edge("$in:x", "positions:x"), edge("positions:out", "lookup:ids"),
              edge("weight:out", "lookup:weight"), edge("$in:x", "add:a"),
              edge("lookup:out", "add:b")],
}

LAYER_NORM = {
    "doc": "Layer normalisation over the last axis, with learned scale (and bias).",
    "params": [
        param("normalized_shape", "int", 32, "Size of the last axis.", min=1),
        param("eps", "float", 1e-5, "Added to the variance.", min=0.0),
        BIAS,
    ],
    "inputs": X_IN,
    "outputs": _out("norm"),
    "nodes": [
        node("weight", "parameter", shape=["$normalized_shape"], init="ones", decay=False),
        {**node("bias", "parameter", shape=["$normalized_shape"], init="zeros", decay=False),
         "when": "$bias"},
        node("norm", "layer_norm", eps="$eps"),
    ],
    "edges": [edge("$in:x", "norm:x"), edge("weight:out", "norm:weight"),
              edge("bias:out", "norm:bias")],
}

DROPOUT = {
    "doc": "Dropout: zeroes each value with probability p while training (scaling the rest "
           "by 1/(1−p)); the identity in evaluation.",
    "params": [param("p", "float", 0.1, "Drop probability.", min=0.0, max=0.999)],
    "inputs": X_IN,
    "outputs": _out("drop"),
    "nodes": [node("drop", "dropout", p="$p")],
    "edges": [edge("$in:x", "drop:x")],
}

ATTENTION = {
    "doc": "Causal multi-head self-attention on x (B, T, C).\n\n"
           "One Linear makes the query, key and value projections (C → 3C); heads of size "
           "C / num_heads attend with scaled dot-product scores, a causal mask and a softmax; "
           "the weighted sums are merged and projected back (C → C).",
    "params": [
        param("embed_dim", "int", 32, "Width C (divisible by num_heads).", min=1),
        param("num_heads", "int", 4, "Attention heads.", min=1),
        param("dropout", "float", 0.0, "Dropout after the output projection.", min=0.0,
              max=0.999),
        BIAS, INIT, INIT_STD, PROJ_STD,
    ],
    "inputs": X_IN,
    "outputs": _out("drop"),
    "nodes": [
        node("qkv", "Linear", in_features="$embed_dim", out_features="$embed_dim*3",
             bias="$bias", init="$init", init_std="$init_std"),
        node("split_heads", "reshape",
             shape=["B", -1, 3, "$num_heads", "$embed_dim//$num_heads"]),
        node("heads_first", "permute", axes=[2, 0, 3, 1, 4]),
        node("q", "index", axis=0, index=0),
        node("k", "index", axis=0, index=1),
        node("v", "index", axis=0, index=2),
        node("attend", "scaled_dot_product_attention", causal=True),
        node("merge", "permute", axes=[0, 2, 1, 3]),
        node("concat_heads", "reshape", shape=["B", -1, "$embed_dim"]),
        node("proj", "Linear", in_features="$embed_dim", out_features="$embed_dim",
             bias="$bias", init="$init", init_std="$proj_init_std"),
        {**node("drop", "dropout", p="$dropout"), "when": "$dropout",
         "bypass": {"out": "x"}},
    ],
    "edges": [
        edge("$in:x", "qkv:x"), edge("qkv:y", "split_heads:x"),
        edge("split_heads:out", "heads_first:x"),
        edge("heads_first:out", "q:x"), edge("heads_first:out", "k:x"),
        edge("heads_first:out", "v:x"),
        edge("q:out", "attend:q"), edge("k:out", "attend:k"), edge("v:out", "attend:v"),
        edge("attend:out", "merge:x"), edge("merge:out", "concat_heads:x"),
        edge("concat_heads:out", "proj:x"), edge("proj:y", "drop:x"),
    ],
}

TRANSFORMER_BLOCK = {
    "doc": "Pre-norm transformer block: x + Attention(LayerNorm(x)), then + MLP(LayerNorm(·)).\n\n"
           "Causal multi-head self-attention and a GELU MLP of width mlp_ratio × C, each "
           "with a residual connection (GPT-2 / nanoGPT style).",
    "params": [
        param("embed_dim", "int", 32, "Width C.", min=1),
        param("num_heads", "int", 4, "Attention heads.", min=1),
        param("mlp_ratio", "int", 4, "MLP hidden width as a multiple of C.", min=1),
        param("dropout", "float", 0.0, "Dropout on the residual branches.", min=0.0,
              max=0.999),
        BIAS, INIT, INIT_STD, PROJ_STD,
    ],
    "inputs": X_IN,
    "outputs": _out("residual2"),
    "nodes": [
        node("ln1", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        node("attn", "MultiHeadSelfAttention", embed_dim="$embed_dim", num_heads="$num_heads",
             dropout="$dropout", bias="$bias", init="$init", init_std="$init_std",
             proj_init_std="$proj_init_std"),
        node("residual1", "add"),
        node("ln2", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        node("mlp", "MLP", in_features="$embed_dim", hidden_features="$embed_dim*$mlp_ratio",
             out_features="$embed_dim", activation="gelu", bias="$bias", init="$init",
             init_std="$init_std", proj_init_std="$proj_init_std"),
        {**node("drop", "dropout", p="$dropout"), "when": "$dropout",
         "bypass": {"out": "x"}},
        node("residual2", "add"),
    ],
    "edges": [
        edge("$in:x", "ln1:x"), edge("ln1:y", "attn:x"), edge("$in:x", "residual1:a"),
        edge("attn:y", "residual1:b"), edge("residual1:out", "ln2:x"), edge("ln2:y", "mlp:x"),
        edge("mlp:y", "drop:x"), edge("residual1:out", "residual2:a"),
        edge("drop:out", "residual2:b"),
    ],
}

BUILTIN_LAYERS = {
    "Linear": LINEAR,
    "MLP": MLP,
    "Conv2d": CONV2D,
    "MaxPool2d": _pool("max_pool2d", "max"),
    "AvgPool2d": _pool("avg_pool2d", "average"),
    "Flatten": FLATTEN,
    "BatchNorm1d": _batch_norm("(N, C)"),
    "BatchNorm2d": _batch_norm("(N, C, H, W) per channel"),
    "Embedding": EMBEDDING,
    "PositionalEmbedding": POSITIONAL_EMBEDDING,
    "LayerNorm": LAYER_NORM,
    "Dropout": DROPOUT,
    "MultiHeadSelfAttention": ATTENTION,
    "TransformerBlock": TRANSFORMER_BLOCK,
}

for _name, _definition in BUILTIN_LAYERS.items():
    register_layer(_name, _definition)
