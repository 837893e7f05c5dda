"""Comparing recomputed numbers with committed ones: equal within a stated tolerance, never bit for bit.

A statistic recomputed from committed records on another CPU (another BLAS kernel, another summation order)
can differ from the committed value in its last digits. Everything else must be equal exactly: keys, lengths,
strings, integers, booleans, missing values.
"""

from __future__ import annotations

import math
import re

REL = 1e-9  # relative tolerance of a recomputed float: far above rounding, far below any reported digit
ABS = 1e-12  # absolute tolerance, for values that are zero up to rounding


def assert_close_numbers(actual, expected, *, rel=REL, abs_tol=ABS, where="") -> None:
    """Assert two nested structures (dicts, lists, tuples, numbers, strings) are equal, floats within tolerance."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {type(actual).__name__} where a dict was committed"
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(set(actual) ^ set(expected))} differ"
        for key in expected:
            assert_close_numbers(actual[key], expected[key], rel=rel, abs_tol=abs_tol, where=f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple), f"{where}: {type(actual).__name__} where a list was committed"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items where {len(expected)} were committed"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close_numbers(a, e, rel=rel, abs_tol=abs_tol, where=f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, bool) and isinstance(actual, int | float):
        assert math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_tol) or (
            math.isnan(actual) and math.isnan(expected)), f"{where}: {actual!r} != {expected!r} (rel {rel:g})"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.(\d+))?(?:[eE][-+]?\d+)?")


def assert_same_text(actual: str, expected: str) -> None:
    """Assert two rendered texts say the same: identical words, and each printed number equal up to one unit
    in its last printed digit (a recomputed 0.125 may print as 0.12 or 0.13 on another machine)."""
    actual_numbers, expected_numbers = list(_NUMBER.finditer(actual)), list(_NUMBER.finditer(expected))
    assert _NUMBER.sub("#", actual) == _NUMBER.sub("#", expected), "the texts differ in more than their numbers"
    for a, e in zip(actual_numbers, expected_numbers, strict=True):
        unit = 10.0 ** -len(e.group(1) or "")
        if "e" in e.group(0).lower():
            unit *= 10.0 ** int(e.group(0).lower().split("e")[1])
        value = float(e.group(0).replace(",", ""))
        assert abs(float(a.group(0).replace(",", "")) - value) <= unit * 1.000001, (
            f"{a.group(0)!r} where {e.group(0)!r} was committed (more than one unit in the last digit)")
