"""Text as byte-level tokens, for language models (``gpt_tiny``): an embedded corpus, synthetic tokens, your file.

Tokens: ``PAD = 0``, ``BOS = 1``, ``EOS = 2`` (the token conventions of every token task), then byte value ``b`` is
token ``b + 3``: a vocabulary of 259 that covers any UTF-8 text with no tokenizer to train or download.

Samples are windows of ``context_length + 1`` consecutive tokens cut from one long token stream, ``context_length``
apart (each token is predicted once): ``x`` is the window's first ``context_length`` tokens (int32), ``y`` its last
``context_length`` (int64), the next token at every position. The loss, the same for every implementation, is the
softmax cross-entropy of the next token, the mean over the labelled (non-PAD) tokens of a batch; the metrics after
each epoch are that loss, its perplexity ``exp(loss)`` and the next-token accuracy (``metrics``). Every
implementation visits the windows in the order ``twinbench.data.order`` draws, like images.

Datasets:

- ``pydoc``  an embedded real English corpus that needs no download: the help texts of Python's own keywords and
  topics (``pydoc_data.topics``, shipped with every CPython: ``help("if")`` prints one), each followed by ``EOS``,
  in sorted topic order. The stream's first 90% trains, the last 10% tests: a fixed split with no window in both.
  The text depends on the Python version (3.11.7 here: 79 topics, 465k characters); its SHA-256 is in ``meta``.
- ``synthetic_tokens``  uniform random tokens of any vocabulary and length, for throughput runs.
- ``text_file``  your own UTF-8 text: ``--data-dir`` names a ``.txt`` file, or a directory whose ``*.txt`` files are
  read in sorted order (each followed by ``EOS``); the same 90/10 split.

This module imports NumPy only.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import numpy as np

from twinbench.data.base import Dataset, DatasetError, check_int, resolve_data_dir
from twinbench.data.tasks import EOS, FIRST_TOKEN, PAD  # the token conventions of every token task

FIRST_BYTE_TOKEN = FIRST_TOKEN  # byte b is token b + 3
VOCAB_SIZE = FIRST_BYTE_TOKEN + 256
TRAIN_SHARE = 0.9  # the first 90% of the token stream trains, the rest tests
DEFAULT_CONTEXT = 64


def encode(text: str | bytes) -> np.ndarray:
    """UTF-8 bytes -> tokens (int32): byte ``b`` is token ``b + 3``."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int32) + FIRST_BYTE_TOKEN


def decode(tokens) -> str:
    """Tokens -> text; special tokens are dropped, invalid UTF-8 is replaced (a model's output may be neither)."""
    tokens = np.asarray(tokens).ravel()
    return bytes((tokens[tokens >= FIRST_BYTE_TOKEN] - FIRST_BYTE_TOKEN).astype(np.uint8)).decode("utf-8", "replace")


def _stream(texts) -> np.ndarray:
    """One token stream: each text's tokens followed by ``EOS``."""
    parts = []
    for text in texts:
        parts += [encode(text), np.array([EOS], np.int32)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def windows(stream: np.ndarray, context_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: windows of ``context_length + 1`` tokens, ``context_length`` apart; ``y`` is ``x`` shifted by one."""
    count = (len(stream) - 1) // context_length
    starts = np.arange(count)[:, None] * context_length
    window = stream[starts + np.arange(context_length + 1)[None, :]]
    return window[:, :-1].astype(np.int32), window[:, 1:].astype(np.int64)


def _context_length(input_shape) -> int:
    if len(tuple(input_shape)) != 1:
        raise ValueError(f"Text datasets take input_shape=(context_length,). Received: input_shape={tuple(input_shape)}.")
    return check_int("context_length", input_shape[0], 1)


def _split(name, stream, context_length, meta) -> Dataset:
    """The fixed 90/10 split of ``stream`` into training and test windows."""
    cut = int(len(stream) * TRAIN_SHARE)
    x_train, y_train = windows(stream[:cut], context_length)
    x_test, y_test = windows(stream[cut:], context_length)
    if len(x_train) == 0 or len(x_test) == 0:
        raise DatasetError(f"Dataset {name!r} has {len(stream):,} tokens: too few for a training and a test window "
                           f"of {context_length + 1} tokens (shorten --context or give more text).")
    split = f"first {TRAIN_SHARE:.0%} of the token stream trains ({len(x_train):,} windows), the rest tests " \
            f"({len(x_test):,})"
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, num_classes=VOCAB_SIZE,
                   task="language_model", input_shape=(context_length,), meta={**meta, "tokens": int(len(stream)), "context_length": context_length, "split": split})


def load_pydoc(*, input_shape=(DEFAULT_CONTEXT,)) -> Dataset:
    """The embedded corpus: Python's own topic help (``pydoc_data.topics``) as byte tokens."""
    from pydoc_data.topics import topics

    texts = [topics[key] for key in sorted(topics)]
    stream = _stream(texts)
    digest = hashlib.sha256(stream.tobytes()).hexdigest()
    meta = {"source": f"pydoc_data.topics of Python {platform.python_version()} ({len(texts)} topics, sorted, each "
                      f"followed by EOS), byte-level tokens", "sha256": digest}
    return _split("pydoc", stream, _context_length(input_shape), meta)


def load_text_file(*, input_shape=(DEFAULT_CONTEXT,), data_dir: str | os.PathLike | None = None) -> Dataset:
    """Your own UTF-8 text: a ``.txt`` file, or a directory of ``*.txt`` files (sorted), from ``--data-dir``.

    Raises:
        DatasetError: one line, when the path is missing, holds no ``.txt`` file, a file is empty, not UTF-8, or the
            text is too short for one training and one test window.
    """
    expected = "a UTF-8 text file (a .txt file, or a directory of .txt files)"
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        files = [Path(data_dir).expanduser().resolve()]
    else:
        directory, _ = resolve_data_dir(data_dir, dataset="text_file", expected=expected)
        files = sorted(directory.glob("*.txt"))
        if not files:
            raise DatasetError(f"Dataset 'text_file' needs {expected}, but {directory} holds no .txt file.")
    texts = []
    for path in files:
        raw = path.read_bytes()
        if not raw.strip():
            raise DatasetError(f"Dataset 'text_file': {path} is empty; it needs UTF-8 text.")
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DatasetError(f"Dataset 'text_file': {path} is not UTF-8 text (byte {err.start}: {err.reason}).") \
                from None
    stream = _stream(texts)
    meta = {"source": f"{len(files)} UTF-8 file(s) from {files[0].parent}: {', '.join(p.name for p in files[:5])}"
                      f"{' ...' if len(files) > 5 else ''}, byte-level tokens",
            "sha256": hashlib.sha256(stream.tobytes()).hexdigest()}
    return _split("text_file", stream, _context_length(input_shape), meta)


def load_synthetic_tokens(*, input_shape=(DEFAULT_CONTEXT,), num_classes: int = VOCAB_SIZE, seed: int = 0,
                          train_size: int = 2048, test_size: int = 512) -> Dataset:
    """Uniform random tokens ``FIRST_BYTE_TOKEN .. num_classes - 1`` of any vocabulary and context length.

    Each sample is a random sequence of ``context_length + 1`` tokens, ``y`` its shift by one, from
    ``np.random.default_rng(seed)`` (train, then test): for throughput runs, where the values do not matter.
    """
    length = _context_length(input_shape)
    num_classes = check_int("num_classes", num_classes, FIRST_BYTE_TOKEN + 1)
    rng = np.random.default_rng(seed)

    def draw(n):
        seq = rng.integers(FIRST_BYTE_TOKEN, num_classes, (check_int("synthetic size", n, 1), length + 1))
        return seq[:, :-1].astype(np.int32), seq[:, 1:].astype(np.int64)

    (x_train, y_train), (x_test, y_test) = draw(train_size), draw(test_size)
    return Dataset(name="synthetic_tokens", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=num_classes, task="language_model", input_shape=(length,), meta={"source": f"np.random.default_rng({seed}): uniform tokens "
                                                            f"{FIRST_BYTE_TOKEN}..{num_classes - 1}",
                                                  "context_length": length})


def metrics(logits, labels) -> dict[str, float]:
    """Loss (mean next-token cross-entropy over the labelled tokens), its perplexity and the next-token accuracy.

    Args:
        logits: ``(N, T, vocab)`` next-token logits.
        labels: ``(N, T)`` next tokens; ``PAD`` positions are not counted.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = -np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    mask = labels != PAD
    count = max(1, int(mask.sum()))
    loss = float(picked[mask].sum() / count)
    accuracy = float(((np.argmax(logits, axis=-1) == labels) & mask).sum() / count)
    return {"loss": loss, "perplexity": float(np.exp(loss)), "token_accuracy": accuracy}
