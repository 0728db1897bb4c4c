"""engine.api.dataset_summary and predict_file: what a data node holds, clear messages."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine import api
from engine.base.errors import WiregradError


def test_dataset_summary_of_the_spiral_and_the_char_gpt():
    doc, _ = api.open_graph("spiral_mlp")
    s = api.dataset_summary(doc, "spirals")
    assert (s["examples"], s["train"], s["val"], s["classes"]) == (1500, 1350, 150, 3)
    doc, _ = api.open_graph("char_gpt")
    s = api.dataset_summary(doc, "text")
    assert s["vocab_size"] == 83 and s["characters"] == s["train"] + s["val"] > 1_000_000


def test_dataset_summary_errors_are_clear():
    doc, _ = api.open_graph("char_gpt")
    with pytest.raises(WiregradError, match="not a data source"):
        api.dataset_summary(doc, "wte")
    node = next(n for n in doc["nodes"] if n["id"] == "text")
    node["params"] = {**node["params"], "source": "file", "path": "nowhere.txt"}
    with pytest.raises(WiregradError) as err:
        api.dataset_summary(doc, "text")
    assert err.value.node == "text" and "nowhere.txt" in str(err.value)


def test_predict_file_on_an_image_needs_pillow_or_fits_the_model(tmp_path):
    doc, path = api.open_graph("shapes_cnn")
    image = tmp_path / "shape.png"
    if importlib.util.find_spec("PIL") is None:
        image.write_bytes(b"\x89PNG not really")
        with pytest.raises(WiregradError, match="Pillow"):
            api.predict_file(doc, image, doc_path=path)
    else:
        from PIL import Image

        Image.fromarray(np.zeros((20, 20), np.uint8)).save(image)
        out = api.predict_file(doc, image, doc_path=path)
        assert out["count"] == 1 and out["rows"][0][1] in api.dataset_summary(
            doc, "shapes")["class_names"]
