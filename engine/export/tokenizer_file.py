"""The tokenizer that travels with an export (ONNX ``metadata_props``, ``*.tokenizer.json``).

A text model's ids mean nothing without its tokenizer, so every export of a graph with a text
data node carries one, as a Hugging Face ``tokenizers`` JSON that
``tokenizers.Tokenizer.from_str`` (or ``from_file``) loads with no Wiregrad installed:

* ``bpe`` (``text_corpus``): the document's own trained byte-level BPE, byte for byte.
* ``char`` (``text_corpus``): a ``WordLevel`` model over the ``vocab`` characters (id = the
  character's place in ``vocab``), a pre-tokenizer that isolates every character and the
  ``Fuse`` decoder, so ``decode(encode(text)) == text``; a character outside ``vocab`` is an
  error there too (its unknown token ``<unk>`` is deliberately not in the vocabulary).
* ``sequence_pairs``: ``<pad>``, ``<bos>``, ``<eos>`` as special tokens 0, 1, 2
  (``skip_special_tokens`` drops them), then the character ``WordLevel``'s ids, or (``bpe``)
  the node's BPE with every id shifted by 3 — the ids its model reads
  (:mod:`engine.data.pair_tokenizer`).

An ONNX file gets the keys of :data:`METADATA_KEYS` in ``metadata_props`` (the JSON, its kind,
its sha256, the data node and the sibling file's name) and the file ``<stem>.tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from engine.base.errors import MissingExtraError, WiregradError

TEXT_NODES = ("text_corpus", "sequence_pairs")
SEQ2SEQ_SPECIALS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2 (engine.ops.seq2seq)
METADATA_KEYS = ("wiregrad.tokenizer", "wiregrad.tokenizer.kind", "wiregrad.tokenizer.sha256",
                 "wiregrad.tokenizer.node", "wiregrad.tokenizer.file")


@dataclass(frozen=True)
class ExportedTokenizer:
    """A Hugging Face tokenizer JSON and what it belongs to."""

    kind: str  # "char" or "bpe"
    data: str  # the tokenizer JSON
    node: str  # the data node it tokenizes for

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data.encode("utf-8")).hexdigest()


def char_tokenizer_json(vocab: str, specials: tuple[str, ...] = ()) -> str:
    """A Hugging Face ``WordLevel`` tokenizer JSON: *specials* take ids 0…, then one id per
    character of *vocab* in order."""
    tokens = list(specials) + list(vocab)
    if len(set(tokens)) != len(tokens):
        raise WiregradError("the vocabulary repeats a character", field="vocab")
    model = {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(tokens)},
             "unk_token": "<unk>"}
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"},
                          "behavior": "Isolated", "invert": False},
        "post_processor": None, "decoder": {"type": "Fuse"}, "model": model,
    }
    return json.dumps(doc, ensure_ascii=False)


def exported_tokenizer(doc: dict, base_dir: Path | None = None) -> ExportedTokenizer | None:
    """The tokenizer of *doc*'s first text data node, or None for a graph without one.

    A BPE node that has not stored its trained tokenizer yet gets it trained (or read from
    the cache) from its corpus, as :func:`engine.data.tokenizers.store_tokenizers` does."""
    node = next((n for n in doc.get("nodes", []) if n.get("type") in TEXT_NODES), None)
    if node is None:
        return None
    params, nid = node.get("params", {}), node.get("id", "")
    kind = params.get("tokenizer", "char")
    if kind == "bpe":
        data = params.get("tokenizer_data") or _trained(node, base_dir)
        if not data:
            raise WiregradError("this BPE tokenizer is not trained yet: train the graph first",
                                node=nid, field="tokenizer_data")
        _check_bpe(data, params, nid)
        if node["type"] == "sequence_pairs":
            data = with_specials(data, SEQ2SEQ_SPECIALS)
        return ExportedTokenizer("bpe", data, nid)
    if kind != "char":
        raise WiregradError(f"tokenizer {kind!r} cannot be exported", node=nid,
                            field="tokenizer")
    specials = SEQ2SEQ_SPECIALS if node["type"] == "sequence_pairs" else ()
    vocab = params.get("vocab")
    if not isinstance(vocab, str) or not vocab:
        raise WiregradError("the text node has no 'vocab' to export", node=nid, field="vocab")
    return ExportedTokenizer("char", char_tokenizer_json(vocab, specials), nid)


def _check_bpe(data: str, params: dict, nid: str) -> None:
    """Refuse a stored BPE that ``tokenizers`` cannot read, or with more pieces than the
    node's ``vocab_size`` (ids the model has no class for)."""
    from engine.data.tokenizers import from_params

    pieces = from_params({"tokenizer": "bpe", "tokenizer_data": data}, nid).vocab_size
    size = int(params.get("vocab_size", 0))
    if pieces > size:
        raise WiregradError(f"the stored tokenizer holds {pieces} pieces, more than "
                            f"vocab_size = {size} (the model's classes): train the graph "
                            "again or raise vocab_size", node=nid, field="tokenizer_data")


def _trained(node: dict, base_dir: Path | None) -> str:
    """The BPE a node without ``tokenizer_data`` trains on its corpus or pairs (cached)."""
    if node["type"] == "sequence_pairs":
        from engine.data.sequence_pairs import store_tokenizers as store_pairs

        stored = store_pairs({"nodes": [node]}, base_dir)
    else:
        from engine.data.tokenizers import store_tokenizers

        stored = store_tokenizers({"nodes": [node]}, base_dir)
    return stored["nodes"][0]["params"].get("tokenizer_data") or ""


def with_specials(data: str, specials: tuple[str, ...]) -> str:
    """A BPE tokenizer JSON whose ids are shifted past *specials* (which take ids 0…, as
    special tokens): the ids a ``sequence_pairs`` model reads (its pad / begin / end first)."""
    doc = json.loads(data)
    vocab = doc["model"]["vocab"]
    doc["model"]["vocab"] = {**{s: i for i, s in enumerate(specials)},
                             **{t: i + len(specials) for t, i in vocab.items()}}
    doc["added_tokens"] = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for i, s in enumerate(specials)]
    return json.dumps(doc, ensure_ascii=False)


def sibling_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` → ``model.tokenizer.json`` (next to it)."""
    path = Path(onnx_path)
    return path.with_name(f"{path.stem}.tokenizer.json")


def add_metadata(proto, tok: ExportedTokenizer, file_name: str) -> None:
    """Put *tok* into an ONNX ``ModelProto``'s ``metadata_props`` (keys :data:`METADATA_KEYS`,
    replacing any there)."""
    values = dict(zip(METADATA_KEYS, (tok.data, tok.kind, tok.sha256, tok.node, file_name)))
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    for prop in kept:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)


def write_tokenizer(path: str | Path, tok: ExportedTokenizer) -> Path:
    """Write the tokenizer JSON to *path* (atomically)."""
    from engine.base.io import atomic_write_text

    path = Path(path)
    atomic_write_text(path, tok.data)
    return path


def tokenize_folder(folder: Path, doc: dict, onnx_files: tuple[str, ...],
                    base_dir: Path | None = None) -> Path | None:
    """A multi-file export (the seq2seq ``onnx-decoder`` folder): ``tokenizer.json`` in
    *folder* and the tokenizer in each of *onnx_files*' ``metadata_props`` (*base_dir*: the
    folder a BPE node's corpus path is relative to)."""
    from engine.base.io import atomic_write_bytes

    tok = exported_tokenizer(doc, base_dir)
    if tok is None:
        return None
    try:
        import onnx
    except ImportError:  # the folder's .onnx files were written with it: only a race lacks it
        raise MissingExtraError("onnx", "onnx") from None
    for name in onnx_files:
        proto = onnx.load(str(folder / name))
        add_metadata(proto, tok, "tokenizer.json")
        atomic_write_bytes(folder / name, proto.SerializeToString())
    return write_tokenizer(folder / "tokenizer.json", tok)
