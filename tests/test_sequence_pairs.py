"""The sequence_pairs data source: the dates generator is deterministic and its validation
dates never appear in training (in any format); TSV files give clear errors naming the line;
the arrays carry begin / end / padding as documented; token_accuracy ignores padding."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.core import registry
from engine.data import dates
from engine.data.sequence_pairs import build, decode, to_arrays
from engine.ops.seq2seq import BOS, DATES_VOCAB, EOS, IGNORE, PAD

PARAMS = {**registry.get("sequence_pairs").defaults(), "n_train": 3000, "n_val": 1000}


def test_every_format_writes_the_same_day_and_fits():
    day = dt.date(1987, 3, 3)
    written = [dates.render(day, f) for f in range(len(dates.FORMATS))]
    assert "Tuesday, 3rd of March 1987" in written and "03/03/87" in written
    assert "march 3 1987" in written and "3 Mar. 1987" in written
    assert len(set(written)) == len(dates.FORMATS)
    assert (dates.ordinal(11), dates.ordinal(22), dates.ordinal(1)) == ("11th", "22nd", "1st")
    longest = max(len(dates.render(dates.day_of(k), f))
                  for f in range(len(dates.FORMATS)) for k in range(0, dates.DAYS, 97))
    assert longest <= PARAMS["max_source_len"]
    assert set("".join(written)) <= set(DATES_VOCAB)


def test_dates_are_deterministic_and_held_out_by_calendar_date():
    train1, val1 = dates.generate(3000, 1000, seed=4)
    train2, val2 = dates.generate(3000, 1000, seed=4)
    assert train1 == train2 and val1 == val2
    assert dates.generate(3000, 1000, seed=5)[1] != val1
    val_days = {iso for _, iso in val1}
    assert len(val_days) == 1000  # 1,000 distinct calendar dates
    assert not val_days & {iso for _, iso in train1}
    train_days, held = dates.split_days(1000, seed=4)
    assert not set(train_days) & set(held) and len(train_days) + len(held) == dates.DAYS
    assert {dates.iso(dates.day_of(i)) for i in held} == val_days


def test_arrays_carry_begin_end_and_padding():
    ds = build(PARAMS, None, "pairs")
    assert ds.info["val"] == 1000 and ds.info["classes"] == len(DATES_VOCAB) + 3
    src, mask = ds.train["source"], ds.train["source_mask"]
    tin, tout = ds.train["target_in"], ds.train["target_out"]
    assert src.shape[1] == 34 and tin.shape == tout.shape and tin.shape[1] == 11
    assert np.all(tin[:, 0] == BOS)
    np.testing.assert_array_equal(mask, (src != PAD).astype(np.float32))
    a, b = ds.info["val_pairs"][0]
    row = {k: v[0] for k, v in ds.val.items()}
    assert decode(row["source"], DATES_VOCAB) == a
    assert decode(row["target_in"][1:], DATES_VOCAB) == b
    assert row["target_out"][len(b)] == EOS and np.all(row["target_out"][len(b) + 1:] == IGNORE)
    np.testing.assert_array_equal(row["target_in"][1:len(b) + 1], row["target_out"][:len(b)])


def _tsv(tmp_path, text: str | bytes, **params):
    path = tmp_path / "pairs.tsv"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return build({**PARAMS, "source": "file", "path": str(path), "vocab": "abcdefxyz ",
                  "max_source_len": 6, "max_target_len": 4, "val_fraction": 0.25, **params},
                 None, "pairs")


def test_a_tsv_file_splits_and_skips_long_pairs(tmp_path):
    lines = "\n".join(["abc\txyz", "fed\tzz", "a b\tx", "aaaaaaaa\tx", "cab\tyx", ""])
    ds = _tsv(tmp_path, lines)
    assert ds.info["skipped"] == 1 and ds.info["train"] + ds.info["val"] == 4
    assert ds.info["val"] == 1
    with pytest.raises(WiregradError, match=r"line 4: pair of 8 → 1 characters is longer"):
        _tsv(tmp_path, lines, too_long="refuse")


@pytest.mark.parametrize("text,message", [
    ("abc\txyz\nabc xyz\n", r"pairs.tsv, line 2: expected source<TAB>target, found 0 tab"),
    ("abc\txyz\na\tb\tc\n", r"line 2: expected source<TAB>target, found 2 tab"),
    ("abc\txyz\nabc\tQ!\n", r"line 2: characters '!Q' are not in 'vocab'"),
    (b"abc\txyz\n\xff\xfe\tx\n", r"line 2: not UTF-8 text"),
    ("abc\txyz\n", r"1 usable pair"),
])
def test_malformed_tsv_files_are_refused_naming_the_line(tmp_path, text, message):
    with pytest.raises(WiregradError, match=message) as info:
        _tsv(tmp_path, text)
    assert info.value.node == "pairs"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(WiregradError, match="no such file"):
        build({**PARAMS, "source": "file", "path": str(tmp_path / "nope.tsv")}, None, "pairs")


def test_to_arrays_pads_to_the_maximum_lengths():
    arrays = to_arrays([("ab", "x"), ("abcd", "xyz")], "abcdxyz", 5, 4)
    assert arrays["source"].shape == (2, 5) and arrays["target_in"].shape == (2, 5)
    np.testing.assert_array_equal(arrays["source_mask"], [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(arrays["target_out"][0], [7, EOS, IGNORE, IGNORE, IGNORE])


def test_token_accuracy_ignores_padding():
    from tests.test_kernels_nn import run_op

    logits = np.zeros((1, 4, 3))
    logits[0, [0, 1, 2, 3], [1, 2, 0, 0]] = 1.0  # predicts 1, 2, 0, 0
    labels = np.array([[1, 0, IGNORE, IGNORE]])
    assert float(run_op("token_accuracy", [logits, labels])) == pytest.approx(0.5)
    labels = np.array([[1, 2, IGNORE, 0]])
    assert float(run_op("token_accuracy", [logits, labels])) == pytest.approx(1.0)
