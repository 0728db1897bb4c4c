"""The engine's public surface for the editor and the CLI: plain data in, plain data out.

The editor imports only this package: besides the functions of its modules — ``graphs``
(catalog, layers, presets, validation), ``weights`` (worker, weight files, ONNX import),
``text`` (sampling, embeddings, tokenizers, seq2seq decoding) and ``exports`` (export, run,
predictions, data summaries) — it re-exports the graph document module (``api.document``),
the error types (``api.errors``) and the platform folders (``api.paths``). Nothing here
imports Qt.
"""

from __future__ import annotations

from engine.api.exports import (  # noqa: F401
    dataset_summary,
    export_onnx,
    export_torch,
    files_outside,
    predict_file,
    run_model,
)
from engine.api.graphs import (  # noqa: F401
    catalog,
    delete_user_layer,
    embed_layer_definitions,
    gradcheck,
    layer_entry,
    layer_types_used,
    list_presets,
    open_graph,
    save_user_layer,
    validate,
    warm_up,
)
from engine.api.text import (  # noqa: F401
    attention_maps,
    decode_pairs,
    embedding_map,
    embedding_neighbours,
    is_language_model,
    is_seq2seq,
    sample_tokens,
    sampler_for,
    sampler_vocab,
    store_tokenizers,
    tokenize,
)
from engine.api.weights import (  # noqa: F401
    default_worker_threads,
    document_weights,
    document_weights_path,
    graph_hash,
    import_onnx,
    import_onnx_to,
    load_weights_file,
    load_weights_into,
    save_loaded_weights,
    start_worker,
    weights_detail,
)
from engine.base import errors as errors  # re-exported for the editor
from engine.base import paths as paths  # re-exported for the editor
from engine.base.errors import WiregradError as WiregradError
from engine.core import document as document
