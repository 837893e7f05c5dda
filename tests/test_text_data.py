"""data/text.py: byte-level tokens, the embedded pydoc corpus, synthetic tokens, a user's text file, the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.data.base import DatasetError
from twinbench.data.order import batch_indices
from twinbench.data.text import (
    EOS,
    FIRST_BYTE_TOKEN,
    PAD,
    VOCAB_SIZE,
    decode,
    encode,
    load_pydoc,
    load_synthetic_tokens,
    load_text_file,
    metrics,
    windows,
)


def test_bytes_round_trip_and_special_tokens_stay_apart():
    tokens = encode("héllo, 世界")
    assert tokens.min() >= FIRST_BYTE_TOKEN and tokens.max() < VOCAB_SIZE
    assert decode(np.concatenate([tokens, [EOS, PAD]])) == "héllo, 世界"


def test_windows_predict_every_token_once():
    stream = np.arange(3, 3 + 21, dtype=np.int32)  # 21 tokens, context 5: 4 windows
    x, y = windows(stream, 5)
    assert x.shape == y.shape == (4, 5) and x.dtype == np.int32 and y.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    assert np.array_equal(y.ravel(), stream[1:21])  # every next token is a label exactly once


def test_pydoc_corpus_is_embedded_split_and_fixed():
    a, b = load_pydoc(input_shape=(32,)), load_pydoc(input_shape=(32,))
    assert a.num_classes == VOCAB_SIZE and a.x_train.shape[1] == 32
    assert len(a.x_train) > 9 * len(a.x_test) * 0.95  # 90/10
    assert np.array_equal(a.x_train, b.x_train) and a.meta["sha256"] == b.meta["sha256"]
    assert "the" in decode(a.x_train[:20])
    # the identical per-epoch order for every implementation: twinbench.data.order, by the number of windows alone
    assert all(np.array_equal(p, q) for p, q in zip(batch_indices(len(a.x_train), 32, epoch=1, seed=0),
                                                       batch_indices(len(b.x_train), 32, epoch=1, seed=0), strict=True))


def test_synthetic_tokens_any_vocabulary_and_length():
    ds = load_synthetic_tokens(input_shape=(128,), num_classes=50_257, seed=1, train_size=8, test_size=2)
    assert ds.x_train.shape == (8, 128) and ds.x_test.shape == (2, 128) and ds.num_classes == 50_257
    assert ds.x_train.min() >= FIRST_BYTE_TOKEN and ds.y_train.max() < 50_257
    assert np.array_equal(ds.x_train[:, 1:], ds.y_train[:, :-1])


def test_text_file_and_its_one_line_errors(tmp_path):
    (tmp_path / "a.txt").write_text("twinbench " * 40, encoding="utf-8")
    ds = load_text_file(input_shape=(16,), data_dir=tmp_path / "a.txt")
    assert decode(ds.x_train[0]) == "twinbench twinbe"
    assert load_text_file(input_shape=(16,), data_dir=tmp_path).meta["sha256"] != ""  # a directory of .txt files
    cases = {"missing": (tmp_path / "nope", "does not exist"), "no_txt": (tmp_path / "d", "holds no .txt file"),
             "empty": (tmp_path / "e", "is empty"), "latin1": (tmp_path / "l", "is not UTF-8")}
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x.txt").write_text("  \n")
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "x.txt").write_bytes("café".encode("latin-1"))
    for directory, message in cases.values():
        with pytest.raises(DatasetError, match=message) as err:
            load_text_file(input_shape=(16,), data_dir=directory)
        assert "\n" not in str(err.value)
    (tmp_path / "short.txt").write_text("short text")
    with pytest.raises(DatasetError, match="too few"):
        load_text_file(input_shape=(64,), data_dir=tmp_path / "short.txt")


def test_metrics_loss_perplexity_accuracy_skip_pad():
    logits = np.zeros((1, 3, 5))
    logits[0, 0, 3] = 10.0  # confident and right
    logits[0, 1, 4] = 10.0  # confident and wrong (label 3)
    labels = np.array([[3, 3, PAD]])
    m = metrics(logits, labels)
    assert m["token_accuracy"] == 0.5  # PAD is not counted
    assert m["perplexity"] == pytest.approx(np.exp(m["loss"]))
    uniform = metrics(np.zeros((2, 4, 7)), np.full((2, 4), 4))
    assert uniform["perplexity"] == pytest.approx(7.0)  # a uniform guess over 7 tokens
