"""Implicit-feedback recommendation data for NCF: ``implicit`` (embedded, synthetic) and ``movielens`` (files).

The protocol is the NCF paper's (He et al., "Neural Collaborative Filtering", WWW 2017, section 4.1):

- every rating is an interaction (implicit feedback: label 1);
- leave-one-out: each user's latest interaction is held out for testing, the rest train;
- training: each positive with ``NEGATIVES = 4`` items the user never interacted with (label 0), drawn afresh
  every epoch (``Dataset.resample``) from ``default_rng([seed, epoch])`` in NumPy: every implementation trains on
  the same negatives;
- test: each user's held-out item first, then ``TEST_NEGATIVES = 99`` items the user never interacted with
  (drawn once, seeded); HR@10 is the share of users whose held-out item scores among the 10 best of the 100.

Inputs are ``(user, item)`` int32 arrays; labels float32 ``(N, 1)``; the build arguments are
``input_shape=(num_users, num_items)`` and ``num_classes=1`` (``twinbench.data.tasks``).

``implicit`` plants a low-rank structure: users and items get random 4-dimensional factors and each user's
interactions are drawn with probabilities that grow with the factors' dot product, so a model that learns the
factors ranks the held-out items high, and HR@10 rises well above the 10% a random ranking gets.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from twinbench.data.base import Dataset, DatasetError, describe_error, resolve_data_dir

NEGATIVES = 4  # sampled negatives per training positive (the paper's ratio)
TEST_NEGATIVES = 99  # sampled negatives per held-out positive
CANDIDATES = 1 + TEST_NEGATIVES
MOVIELENS_FILES = ("ml-1m/ratings.dat", "ml-latest-small/ratings.csv")
EXPECTED = "the MovieLens ratings file ml-1m/ratings.dat or ml-latest-small/ratings.csv"

# implicit: sizes of the embedded synthetic data
IMPLICIT_USERS, IMPLICIT_ITEMS, IMPLICIT_PER_USER, IMPLICIT_RANK = 128, 256, 12, 4
IMPLICIT_SEED = 2017  # fixed: the data are the same for every run seed


def _sample_negatives(rng, users, seen, count):
    """For each of ``users``, ``count`` items that user never interacted with (``seen[user, item]`` False)."""
    num_items = seen.shape[1]
    users = np.repeat(users, count)
    items = rng.integers(0, num_items, len(users))
    bad = seen[users, items]
    while bad.any():  # redraw the ones that hit an interaction (users have far fewer than num_items)
        items[bad] = rng.integers(0, num_items, int(bad.sum()))
        bad = seen[users, items]
    return users, items


def _build(name, users, items, *, num_users, num_items, seed, meta) -> Dataset:
    """Leave-one-out split, training arrays of epoch 0, test candidates: ``users``/``items`` in time order."""
    seen = np.zeros((num_users, num_items), dtype=bool)
    seen[users, items] = True
    last = np.zeros(num_users, dtype=np.int64) - 1
    np.maximum.at(last, users, np.arange(len(users)))  # each user's latest interaction (inputs are in time order)
    if (last < 0).any() or np.bincount(users, minlength=num_users).min() < 2:
        raise DatasetError(f"Dataset {name!r}: every user needs at least 2 interactions (one is held out).")
    held_out = np.zeros(len(users), dtype=bool)
    held_out[last] = True
    train_users, train_items = users[~held_out], items[~held_out]
    if len(np.unique(train_items)) < 1 or num_items - seen.sum(axis=1).max() < TEST_NEGATIVES:
        raise DatasetError(f"Dataset {name!r}: some user interacted with too many items to draw "
                           f"{TEST_NEGATIVES} test negatives.")

    def resample(epoch: int):
        rng = np.random.default_rng([seed, epoch])
        neg_users, neg_items = _sample_negatives(rng, train_users, seen, NEGATIVES)
        x = (np.concatenate([train_users, neg_users]).astype(np.int32),
             np.concatenate([train_items, neg_items]).astype(np.int32))
        y = np.concatenate([np.ones(len(train_users)), np.zeros(len(neg_users))]).astype(np.float32)
        return x, y.reshape(-1, 1)

    test_rng = np.random.default_rng([seed, 2**31 - 1])  # the test negatives: drawn once, apart from the epochs'
    test_users = np.arange(num_users)
    _, negatives = _sample_negatives(test_rng, test_users, seen, TEST_NEGATIVES)
    candidates = np.concatenate([items[last][:, None], negatives.reshape(num_users, TEST_NEGATIVES)], axis=1)
    x_test = (np.repeat(test_users, CANDIDATES).astype(np.int32), candidates.reshape(-1).astype(np.int32))
    y_test = np.tile(np.r_[1.0, np.zeros(TEST_NEGATIVES)], num_users).astype(np.float32).reshape(-1, 1)
    x_train, y_train = resample(0)
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, num_classes=1,
                   task="recommendation", input_shape=(num_users, num_items), resample=resample,
                   meta={**meta, "users": num_users, "items": num_items, "interactions": int(len(users)),
                         "negatives_per_positive": NEGATIVES, "test_candidates": CANDIDATES,
                         "split": "leave-one-out (latest interaction)", "negatives_seed": seed})


def load_implicit(*, seed: int = 0) -> Dataset:
    """The embedded synthetic implicit-feedback data with a planted rank-4 structure (see the module docstring)."""
    rng = np.random.default_rng(IMPLICIT_SEED)
    user_factors = rng.normal(size=(IMPLICIT_USERS, IMPLICIT_RANK))
    item_factors = rng.normal(size=(IMPLICIT_ITEMS, IMPLICIT_RANK))
    scores = user_factors @ item_factors.T
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    users, items = [], []
    for user in range(IMPLICIT_USERS):  # drawn without replacement, in the order drawn (= "time" order)
        chosen = rng.choice(IMPLICIT_ITEMS, size=IMPLICIT_PER_USER, replace=False, p=probs[user])
        users.append(np.full(IMPLICIT_PER_USER, user))
        items.append(chosen)
    order = np.argsort(np.tile(np.arange(IMPLICIT_PER_USER), IMPLICIT_USERS), kind="stable")  # time: round by round
    users, items = np.concatenate(users)[order], np.concatenate(items)[order]
    return _build("implicit", users, items, num_users=IMPLICIT_USERS, num_items=IMPLICIT_ITEMS, seed=seed,
                  meta={"source": f"synthetic rank-{IMPLICIT_RANK} implicit feedback (seed {IMPLICIT_SEED}), "
                                  f"{IMPLICIT_PER_USER} interactions per user"})


def _read_ratings(path: Path):
    """``(user ids, item ids, timestamps)`` of a MovieLens ratings file (``::``-separated or CSV with header)."""
    users, items, times = [], [], []
    try:
        with open(path, newline="", encoding="latin-1") as f:
            if path.suffix == ".csv":
                rows = csv.reader(f)
                header = next(rows, None)
                if header is None or [h.strip() for h in header[:4]] != ["userId", "movieId", "rating", "timestamp"]:
                    raise DatasetError(f"{path}: the first line must be the header userId,movieId,rating,timestamp.")
                first = 2
            else:
                rows = (line.rstrip("\n").split("::") for line in f)
                first = 1
            for number, row in enumerate(rows, start=first):
                if not row or row == [""]:
                    continue
                if len(row) != 4:
                    raise DatasetError(f"{path}, line {number}: expected 4 fields (user, movie, rating, timestamp), "
                                       f"got {len(row)}.")
                try:
                    users.append(int(row[0]))
                    items.append(int(row[1]))
                    float(row[2])
                    times.append(int(float(row[3])))
                except ValueError:
                    raise DatasetError(f"{path}, line {number}: not numbers: {','.join(row)[:80]!r}.") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot be read ({describe_error(err)}).") from None
    if not users:
        raise DatasetError(f"{path} holds no ratings.")
    return np.array(users), np.array(items), np.array(times)


def find_movielens(directory: Path) -> Path | None:
    """The first of ``MOVIELENS_FILES`` under ``directory`` (or the bare file name in ``directory`` itself)."""
    for relative in MOVIELENS_FILES:
        for candidate in (directory / relative, directory / Path(relative).name):
            if candidate.is_file():
                return candidate
    return None


def load_movielens(data_dir=None, *, seed: int = 0) -> Dataset:
    """MovieLens (ml-1m or ml-latest-small) as implicit feedback, leave-one-out by timestamp.

    Raises:
        DatasetError: no data directory, no ratings file in it, or a malformed line (the message names it).
    """
    directory, origin = resolve_data_dir(data_dir, dataset="movielens", expected=EXPECTED)
    path = find_movielens(directory)
    if path is None:
        raise DatasetError(f"Dataset 'movielens' needs {EXPECTED}, not found in {directory} (from {origin}).")
    raw_users, raw_items, times = _read_ratings(path)
    user_ids, users = np.unique(raw_users, return_inverse=True)
    item_ids, items = np.unique(raw_items, return_inverse=True)
    order = np.lexsort((items, times))  # time order; ties broken by item, so the split is deterministic
    return _build("movielens", users[order], items[order], num_users=len(user_ids), num_items=len(item_ids),
                  seed=seed, meta={"source": str(path), "ratings": int(len(raw_users))})
