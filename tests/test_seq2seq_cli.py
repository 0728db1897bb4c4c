"""`wiregrad sample` on a seq2seq graph: --input / --input-file / --beam print the decoded
outputs; --prompt is refused with a pointer to --input; the language-model path refuses the
seq2seq options."""

from __future__ import annotations

import numpy as np
import pytest

from engine import cli
from engine.base.io import save_weights
from engine.core import document
from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.sample import seq2seq as S
from engine.sample import seq2seq_search as search


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s2s")
    doc = seq2seq_dates(layers=1, width=16, heads=2, n_train=100)
    weights = init_weights(compile_document(doc, "float32").parameters, 1, np.float32)
    document.save(doc, folder / "dates.json")
    save_weights(folder / "w.safetensors", weights)
    return folder, doc, weights


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_input_prints_the_greedy_output(capsys, model_files):
    folder, doc, weights = model_files
    model = S.load_model(doc, weights)
    want = search.translate(model, ["3rd of March, 1987"])[0]
    code, out, _ = _run(capsys, "sample", str(folder / "dates.json"), "--weights",
                        str(folder / "w.safetensors"), "--input", "3rd of March, 1987")
    assert code == 0 and out == want + "\n"
    code, out, _ = _run(capsys, "sample", str(folder / "dates.json"), "--weights",
                        str(folder / "w.safetensors"), "--input", "3rd of March, 1987",
                        "--beam", "3")
    best = search.beam_search(model, "3rd of March, 1987", 3)[0]
    assert code == 0 and out == search.to_text(model, best.tokens) + "\n"


def test_input_file_decodes_one_line_per_input(capsys, model_files, tmp_path):
    folder, doc, weights = model_files
    inputs = tmp_path / "in.txt"
    inputs.write_text("03/03/87\nmarch 3 1987\n", encoding="utf-8")
    code, out, _ = _run(capsys, "sample", str(folder / "dates.json"), "--weights",
                        str(folder / "w.safetensors"), "--input-file", str(inputs), "-n", "4")
    assert code == 0
    lines = out.splitlines()
    assert lines == search.translate(S.load_model(doc, weights), ["03/03/87", "march 3 1987"],
                                     max_tokens=4)
    assert all(len(line) <= 4 for line in lines)
    inputs.write_text("03/03/87\nmarch € 1987\n", encoding="utf-8")
    code, _, err = _run(capsys, "sample", str(folder / "dates.json"), "--weights",
                        str(folder / "w.safetensors"), "--input-file", str(inputs))
    assert code == 2 and "in.txt, line 2:" in err and "'€'" in err


def test_prompt_is_refused_on_a_seq2seq_graph(capsys, model_files):
    folder, _, _ = model_files
    code, out, err = _run(capsys, "sample", str(folder / "dates.json"), "--weights",
                          str(folder / "w.safetensors"), "--prompt", "hello")
    assert code == 2 and out == "" and "--input" in err and "Traceback" not in err
    code, _, err = _run(capsys, "sample", str(folder / "dates.json"), "--weights",
                        str(folder / "w.safetensors"))
    assert code == 2 and "pass --input TEXT or --input-file FILE" in err


def test_the_language_model_refuses_seq2seq_options(capsys):
    code, _, err = _run(capsys, "sample", "char_gpt", "--input", "hello")
    assert code == 2 and "for sequence-to-sequence graphs" in err
