"""The comparison of recomputed numbers with committed ones tolerates the last digits, and nothing more."""

import pytest

from approx import assert_close_numbers, assert_same_text


def test_recomputed_floats_may_differ_in_their_last_digits_only():
    committed = {"ci_pct": [-1.1704657597835035, 1.3157628645849295], "n": 230, "shown": True, "note": None}
    assert_close_numbers({"ci_pct": [-1.1704657597835035, 1.315762864584929], "n": 230, "shown": True,
                          "note": None}, committed)
    for wrong in ({**committed, "ci_pct": [-1.1704657597835035, 1.3157]},  # a real difference
                  {**committed, "n": 231}, {**committed, "shown": 1}, {**committed, "extra": 0},
                  {**committed, "ci_pct": [-1.17]}):
        with pytest.raises(AssertionError):
            assert_close_numbers(wrong, committed)


def test_printed_numbers_may_differ_by_one_unit_of_their_last_digit():
    committed = "slowdown -0.36% [-0.77, +0.05], 1,150 windows, 2.5e-03 s"
    assert_same_text("slowdown -0.36% [-0.78, +0.05], 1,150 windows, 2.6e-03 s", committed)
    for wrong in ("slowdown -0.36% [-0.79, +0.05], 1,150 windows, 2.5e-03 s",
                  "slowdown -0.36% [-0.77, +0.05], 1,152 windows, 2.5e-03 s",
                  "slowdown -0.36% [-0.77, +0.05], 1,150 window, 2.5e-03 s"):
        with pytest.raises(AssertionError):
            assert_same_text(wrong, committed)
