"""Encoder–decoder transformer layers: attention between two sequences and the pre-norm
encoder and decoder blocks, as readable subgraphs of registry ops (like PyTorch's
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` / ``DecoderLayer`` with
``norm_first=True``).

The key padding mask is a (B, Tk) wire, nonzero for a real key and 0 for padding (the
``source_mask`` output of the ``sequence_pairs`` data source). A layer only reads it when its
``key_padding_mask`` param is on; with it off the mask port may stay unwired.
"""

from __future__ import annotations

from engine.layers.builtin import BIAS, INIT, INIT_STD, PROJ_STD, edge, node, param, register_layer

EMBED_DIM = param("embed_dim", "int", 32, "Width C (divisible by num_heads).", min=1)
NUM_HEADS = param("num_heads", "int", 4, "Attention heads.", min=1)
DROPOUT_P = param("dropout", "float", 0.0, "Dropout on the residual branches.", min=0.0,
                  max=0.999)
MASK_PARAM = param("key_padding_mask", "bool", True,
                   "Read the (B, Tk) key padding mask: keys where it is 0 get no weight.")
FF_RATIO = param("mlp_ratio", "int", 4, "MLP hidden width as a multiple of C.", min=1)
HEAD = "$embed_dim//$num_heads"


def _attention_params(mask_default: bool) -> list[dict]:
    return [
        EMBED_DIM, NUM_HEADS,
        param("causal", "bool", False, "Hide later keys from each query (decoder "
                                       "self-attention)."),
        {**MASK_PARAM, "default": mask_default},
        param("dropout", "float", 0.0, "Dropout after the output projection.", min=0.0,
              max=0.999),
        BIAS, INIT, INIT_STD, PROJ_STD,
    ]


MULTI_HEAD_ATTENTION = {
    "doc": "Multi-head attention of a query sequence (B, Tq, C) over a key/value sequence "
           "(B, Tk, C).\n\n"
           "Cross-attention when two different wires feed query and key_value, self-attention "
           "when one wire feeds both. The query projection is C → C and the key/value "
           "projection C → 2C; heads of size C / num_heads attend (optionally causally, "
           "optionally hiding padded keys), and the merged heads are projected back (C → C).",
    "params": _attention_params(False),
    "inputs": [{"name": "query", "dtype": "float"}, {"name": "key_value", "dtype": "float"},
               {"name": "key_mask", "dtype": "any"}],
    "outputs": [{"name": "y", "node": "drop", "port": "out"}],
    "nodes": [
        node("q_proj", "Linear", in_features="$embed_dim", out_features="$embed_dim",
             bias="$bias", init="$init", init_std="$init_std"),
        node("kv_proj", "Linear", in_features="$embed_dim", out_features="$embed_dim*2",
             bias="$bias", init="$init", init_std="$init_std"),
        node("q_split", "reshape", shape=["B", -1, "$num_heads", HEAD]),  # (B, Tq, H, D)
        node("q_heads", "permute", axes=[0, 2, 1, 3]),  # (B, H, Tq, D)
        node("kv_split", "reshape", shape=["B", -1, 2, "$num_heads", HEAD]),  # (B, Tk, 2, H, D)
        node("kv_heads", "permute", axes=[2, 0, 3, 1, 4]),  # (2, B, H, Tk, D)
        node("k", "index", axis=0, index=0),
        node("v", "index", axis=0, index=1),
        {**node("mask", "reshape", shape=["B", -1]), "when": "$key_padding_mask"},  # (B, Tk)
        node("attend", "scaled_dot_product_attention", causal="$causal"),  # (B, H, Tq, D)
        node("merge", "permute", axes=[0, 2, 1, 3]),
        node("concat_heads", "reshape", shape=["B", -1, "$embed_dim"]),  # (B, Tq, C)
        node("proj", "Linear", in_features="$embed_dim", out_features="$embed_dim",
             bias="$bias", init="$init", init_std="$proj_init_std"),
        {**node("drop", "dropout", p="$dropout"), "when": "$dropout", "bypass": {"out": "x"}},
    ],
    "edges": [
        edge("$in:query", "q_proj:x"), edge("q_proj:y", "q_split:x"),
        edge("q_split:out", "q_heads:x"), edge("q_heads:out", "attend:q"),
        edge("$in:key_value", "kv_proj:x"), edge("kv_proj:y", "kv_split:x"),
        edge("kv_split:out", "kv_heads:x"), edge("kv_heads:out", "k:x"),
        edge("kv_heads:out", "v:x"), edge("k:out", "attend:k"), edge("v:out", "attend:v"),
        edge("$in:key_mask", "mask:x"), edge("mask:out", "attend:key_mask"),
        edge("attend:out", "merge:x"), edge("merge:out", "concat_heads:x"),
        edge("concat_heads:out", "proj:x"), edge("proj:y", "drop:x"),
    ],
}


def _inherit(*names: str) -> dict:
    """Inner params passed through from the block's params of the same names."""
    return {n: f"${n}" for n in names}


COMMON = ("bias", "init", "init_std", "proj_init_std")


def _mlp() -> dict:
    return node("mlp", "MLP", in_features="$embed_dim", hidden_features="$embed_dim*$mlp_ratio",
                out_features="$embed_dim", activation="gelu", **_inherit(*COMMON))


def _dropped(node_id: str) -> dict:
    return {**node(node_id, "dropout", p="$dropout"), "when": "$dropout",
            "bypass": {"out": "x"}}


BLOCK_PARAMS = [EMBED_DIM, NUM_HEADS, FF_RATIO, DROPOUT_P, MASK_PARAM, BIAS, INIT, INIT_STD,
                PROJ_STD]

TRANSFORMER_ENCODER_BLOCK = {
    "doc": "Pre-norm transformer encoder block: x + Attention(LN(x)) over the whole source "
           "(bidirectional, padded keys hidden), then + MLP(LN(·)).\n\n"
           "x is the source (B, S, C); key_mask is its (B, S) padding mask.",
    "params": BLOCK_PARAMS,
    "inputs": [{"name": "x", "dtype": "float"}, {"name": "key_mask", "dtype": "any"}],
    "outputs": [{"name": "y", "node": "residual2", "port": "out"}],
    "nodes": [
        node("ln1", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        node("attn", "MultiHeadAttention", embed_dim="$embed_dim", num_heads="$num_heads",
             causal=False, key_padding_mask="$key_padding_mask", dropout="$dropout",
             **_inherit(*COMMON)),
        node("residual1", "add"),
        node("ln2", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        _mlp(), _dropped("drop"),
        node("residual2", "add"),
    ],
    "edges": [
        edge("$in:x", "ln1:x"), edge("ln1:y", "attn:query"), edge("ln1:y", "attn:key_value"),
        edge("$in:key_mask", "attn:key_mask"),
        edge("$in:x", "residual1:a"), edge("attn:y", "residual1:b"),
        edge("residual1:out", "ln2:x"), edge("ln2:y", "mlp:x"), edge("mlp:y", "drop:x"),
        edge("residual1:out", "residual2:a"), edge("drop:out", "residual2:b"),
    ],
}

TRANSFORMER_DECODER_BLOCK = {
    "doc": "Pre-norm transformer decoder block: x + causal SelfAttention(LN(x)), "
           "+ CrossAttention(LN(·), memory), then + MLP(LN(·)).\n\n"
           "x is the target stream (B, T, C); memory is the encoder's output (B, S, C) and "
           "memory_mask its (B, S) padding mask, so padded source positions get no weight.",
    "params": BLOCK_PARAMS,
    "inputs": [{"name": "x", "dtype": "float"}, {"name": "memory", "dtype": "float"},
               {"name": "memory_mask", "dtype": "any"}],
    "outputs": [{"name": "y", "node": "residual3", "port": "out"}],
    "nodes": [
        node("ln1", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        node("self_attn", "MultiHeadAttention", embed_dim="$embed_dim", num_heads="$num_heads",
             causal=True, key_padding_mask=False, dropout="$dropout", **_inherit(*COMMON)),
        node("residual1", "add"),
        node("ln2", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        node("cross_attn", "MultiHeadAttention", embed_dim="$embed_dim",
             num_heads="$num_heads", causal=False, key_padding_mask="$key_padding_mask",
             dropout="$dropout", **_inherit(*COMMON)),
        node("residual2", "add"),
        node("ln3", "LayerNorm", normalized_shape="$embed_dim", bias="$bias"),
        _mlp(), _dropped("drop"),
        node("residual3", "add"),
    ],
    "edges": [
        edge("$in:x", "ln1:x"), edge("ln1:y", "self_attn:query"),
        edge("ln1:y", "self_attn:key_value"),
        edge("$in:x", "residual1:a"), edge("self_attn:y", "residual1:b"),
        edge("residual1:out", "ln2:x"), edge("ln2:y", "cross_attn:query"),
        edge("$in:memory", "cross_attn:key_value"),
        edge("$in:memory_mask", "cross_attn:key_mask"),
        edge("residual1:out", "residual2:a"), edge("cross_attn:y", "residual2:b"),
        edge("residual2:out", "ln3:x"), edge("ln3:y", "mlp:x"), edge("mlp:y", "drop:x"),
        edge("residual2:out", "residual3:a"), edge("drop:out", "residual3:b"),
    ],
}

ENCODER_DECODER_LAYERS = {
    "MultiHeadAttention": MULTI_HEAD_ATTENTION,
    "TransformerEncoderBlock": TRANSFORMER_ENCODER_BLOCK,
    "TransformerDecoderBlock": TRANSFORMER_DECODER_BLOCK,
}

for _name, _definition in ENCODER_DECODER_LAYERS.items():
    register_layer(_name, _definition)
