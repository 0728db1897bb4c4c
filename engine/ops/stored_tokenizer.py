"""A cheap check of a text data node's stored BPE tokenizer (``tokenizer_data``).

Shape inference (``wiregrad validate``, the editor's diagnostics) refuses a stored tokenizer
that is not a Hugging Face BPE JSON, or that holds more pieces than ``vocab_size`` (the
model's classes), before a run or an export trips over it. The full parse is
:class:`engine.data.tokenizers.BPETokenizer`'s; this one reads only the JSON's structure.
"""

from __future__ import annotations

import json
from functools import lru_cache

from engine.core.registry import ShapeError

FIELD = "tokenizer_data"


@lru_cache(maxsize=8)
def stored_pieces(data: str) -> int:
    """The number of pieces of a stored BPE tokenizer JSON; ShapeError when it is none."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ShapeError(f"'{FIELD}' is not a tokenizer JSON ({exc.msg}, character "
                         f"{exc.pos}): train the graph again to store a new one") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE" \
            or not isinstance(model.get("vocab"), dict):
        raise ShapeError(f"'{FIELD}' is not a BPE tokenizer JSON (no model of type BPE with a "
                         "vocab): train the graph again to store a new one")
    added = doc.get("added_tokens") if isinstance(doc.get("added_tokens"), list) else []
    vocab = model["vocab"]
    extra = {a.get("content") for a in added if isinstance(a, dict)} - set(vocab)
    return len(vocab) + len(extra)


def check_stored(params: dict) -> None:
    """Refuse a ``bpe`` node's unreadable or oversized ``tokenizer_data`` (empty is fine:
    it is trained from the corpus)."""
    data = params.get(FIELD) or ""
    if params.get("tokenizer", "char") != "bpe" or not data:
        return
    pieces, size = stored_pieces(data), int(params.get("vocab_size", 0))
    if pieces > size:
        raise ShapeError(f"'{FIELD}' holds {pieces} pieces, more than vocab_size = {size} "
                         "(the model's classes): train the graph again or raise vocab_size")
