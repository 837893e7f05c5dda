"""Token data for sequence models: ``reverse`` and ``reverse_lm`` (embedded), ``parallel_text`` (a user's files).

``reverse`` is a deterministic transduction task that needs no download: the source is a string of 3 to
``REVERSE_MAX`` digits, the target the same digits reversed. Its split is fixed (``REVERSE_SEED``), like the
``digits`` dataset's, so every run trains and tests on the same strings. A model that attends to the right
source position learns it within a few epochs; a model that does not stays near chance (1/10 per digit).

``reverse_lm`` is the same task for a decoder-only language model: one sequence ``digits BOS reversed EOS``,
trained on next-token prediction over every position.

``parallel_text`` reads a user's parallel corpus from the data directory: ``source.txt`` and ``target.txt``, one
sentence per line, line ``i`` of one the translation of line ``i`` of the other, tokens separated by spaces.
The last ``1/10`` of the lines (at least one) are the test split. One vocabulary serves both sides: the training
split's ``MAX_VOCAB`` most frequent tokens (ties alphabetical); others become ``<unk>``. Sentences are cut to
``MAX_TOKENS`` tokens (``meta`` says how many were cut).

Layout (``twinbench.data.tasks``): ``x = (source, decoder_input)`` int32, ``y`` int64 labels; ``decoder_input`` is
``BOS`` followed by the target (teacher forcing), the labels are the target followed by ``EOS``; PAD = 0
fills the rest and is masked out of the loss. The build arguments are ``input_shape=(source_length,
target_length)`` and ``num_classes`` = the vocabulary size.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from twinbench.data.base import Dataset, DatasetError, describe_error, resolve_data_dir
from twinbench.data.tasks import BOS, EOS, FIRST_TOKEN, PAD

REVERSE_MAX = 8  # longest digit string
REVERSE_TRAIN, REVERSE_TEST = 2048, 512
REVERSE_SEED = 1409  # fixed split (the year of Bahdanau et al.'s attention paper's arXiv, 1409.0473)
DIGIT_VOCAB = FIRST_TOKEN + 10  # PAD, BOS, EOS, then the digits 0..9
PARALLEL_FILES = ("source.txt", "target.txt")
EXPECTED = "the parallel text files source.txt and target.txt (one sentence per line, aligned by line)"
MAX_VOCAB = 8000
MAX_TOKENS = 50
UNK = FIRST_TOKEN  # parallel_text: the first real token is <unk>


def _pad(rows, length) -> np.ndarray:
    out = np.full((len(rows), length), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _pairs(sources, targets, *, source_len, target_len):
    """``((source, decoder_input), labels)`` of token lists: teacher forcing, EOS-terminated labels."""
    source = _pad(sources, source_len).astype(np.int32)
    labels = _pad([list(t) + [EOS] for t in targets], target_len)
    decoder_input = _pad([[BOS] + list(t) for t in targets], target_len).astype(np.int32)
    return (source, decoder_input), labels


def _digit_strings(rng, count):
    lengths = rng.integers(3, REVERSE_MAX + 1, count)
    return [list(rng.integers(FIRST_TOKEN, DIGIT_VOCAB, n)) for n in lengths]


def load_reverse() -> Dataset:
    """The embedded digit-reversal task (see the module docstring); fixed split, no seed."""
    rng = np.random.default_rng(REVERSE_SEED)
    train, test = _digit_strings(rng, REVERSE_TRAIN), _digit_strings(rng, REVERSE_TEST)
    shape = (REVERSE_MAX, REVERSE_MAX + 1)
    x_train, y_train = _pairs(train, [s[::-1] for s in train], source_len=shape[0], target_len=shape[1])
    x_test, y_test = _pairs(test, [s[::-1] for s in test], source_len=shape[0], target_len=shape[1])
    return Dataset(name="reverse", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=DIGIT_VOCAB, task="seq2seq", input_shape=shape,
                   meta={"source": f"digit strings of 3..{REVERSE_MAX} digits reversed (seed {REVERSE_SEED})",
                         "split": f"fixed {REVERSE_TRAIN}/{REVERSE_TEST}"})


def load_reverse_lm() -> Dataset:
    """``reverse`` as language modelling: ``digits BOS reversed EOS``, next-token labels on every position."""
    rng = np.random.default_rng(REVERSE_SEED)
    train, test = _digit_strings(rng, REVERSE_TRAIN), _digit_strings(rng, REVERSE_TEST)
    length = 2 * REVERSE_MAX + 1  # inputs: digits BOS reversed (EOS is only a label)

    def arrays(strings):
        sequences = _pad([s + [BOS] + s[::-1] + [EOS] for s in strings], length + 1)
        return sequences[:, :-1].astype(np.int32), sequences[:, 1:]

    (x_train, y_train), (x_test, y_test) = arrays(train), arrays(test)
    return Dataset(name="reverse_lm", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=DIGIT_VOCAB, task="language_model", input_shape=(length,),
                   meta={"source": f"digit strings of 3..{REVERSE_MAX} digits, then BOS, then reversed "
                                   f"(seed {REVERSE_SEED})", "split": f"fixed {REVERSE_TRAIN}/{REVERSE_TEST}"})


def _read_lines(path, directory):
    if not path.is_file():
        raise DatasetError(f"Dataset 'parallel_text' needs {EXPECTED}; {path.name} is missing from {directory}.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot be read as UTF-8 text ({describe_error(err)}).") from None
    if not any(line.strip() for line in lines):
        raise DatasetError(f"{path} is empty: it needs one sentence per line.")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DatasetError(f"{path}, line {number}: empty sentence (every line needs a sentence).")
    return [line.split() for line in lines]


def load_parallel_text(data_dir=None) -> Dataset:
    """A user's parallel corpus (``source.txt``, ``target.txt``) from the data directory.

    Raises:
        DatasetError: no directory, a missing, unreadable or empty file, an empty line, or files of different
            line counts (misaligned); the message names the file.
    """
    directory, _ = resolve_data_dir(data_dir, dataset="parallel_text", expected=EXPECTED)
    source, target = (_read_lines(directory / name, directory) for name in PARALLEL_FILES)
    if len(source) != len(target):
        raise DatasetError(f"Dataset 'parallel_text': the files are misaligned: {PARALLEL_FILES[0]} has "
                           f"{len(source)} lines, {PARALLEL_FILES[1]} has {len(target)}; line i of one must "
                           "translate line i of the other.")
    if len(source) < 2:
        raise DatasetError("Dataset 'parallel_text' needs at least 2 sentence pairs (one trains, one tests).")
    cut = sum(len(s) > MAX_TOKENS for s in source) + sum(len(t) > MAX_TOKENS - 1 for t in target)
    source = [s[:MAX_TOKENS] for s in source]
    target = [t[: MAX_TOKENS - 1] for t in target]  # room for EOS / BOS
    n_test = max(1, len(source) // 10)
    n_train = len(source) - n_test
    counts = Counter(token for side in (source[:n_train], target[:n_train]) for s in side for token in s)
    words = sorted(counts, key=lambda w: (-counts[w], w))[: MAX_VOCAB - FIRST_TOKEN - 1]
    index = {w: i for i, w in enumerate(words, start=UNK + 1)}
    source_ids = [[index.get(w, UNK) for w in s] for s in source]
    target_ids = [[index.get(w, UNK) for w in t] for t in target]
    shape = (max(map(len, source_ids)), max(map(len, target_ids)) + 1)
    x_train, y_train = _pairs(source_ids[:n_train], target_ids[:n_train], source_len=shape[0], target_len=shape[1])
    x_test, y_test = _pairs(source_ids[n_train:], target_ids[n_train:], source_len=shape[0], target_len=shape[1])
    return Dataset(name="parallel_text", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=UNK + 1 + len(words), task="seq2seq", input_shape=shape,
                   meta={"source": str(directory), "split": f"first {n_train} lines train, last {n_test} test",
                         "vocabulary": UNK + 1 + len(words), "sentences_cut": cut,
                         "vocabulary_tokens": ["<pad>", "<s>", "</s>", "<unk>", *words][:20]})
