"""Taking a model out of Wiregrad: the model subgraph, forward runs, ONNX and PyTorch projects.

* :mod:`engine.core.inference` — the model (the subgraph from the data inputs to the loss's
  prediction input), its input/output names, its weights, and forward runs (``wiregrad run``).
* :mod:`engine.export.onnx_export` — the model as an ONNX graph (``wiregrad export --format onnx``).
* :mod:`engine.export.torch_project` — a PyTorch project: ``model.py``, ``weights.safetensors``,
  ``train.py`` (``wiregrad export --format torch``).

See docs/export.md.
"""
