"""Are two implementations' final accuracies the same? An equivalence test instead of one run each.

``python -m twinbench equivalence`` trains a model over several seeds per implementation; this module says whether
the mean final accuracies agree within a stated **margin** (e.g. 1 accuracy point):

- ``tost(a, b, margin=...)``: Welch's **two one-sided tests** (TOST). The difference of means ``d = mean(a) -
  mean(b)`` gets Welch's standard error and degrees of freedom (the two sides need not have the same variance);
  the ``1 - 2 alpha`` confidence interval of ``d`` (90% for alpha = 0.05) then decides:

  - **equivalent**: the interval lies inside ``(-margin, +margin)``: both one-sided tests reject "the difference
    is at least the margin" at level alpha (the TOST p-value, the larger of the two, is below alpha);
  - **different**: the interval lies entirely outside ``[-margin, +margin]``: the difference is shown to be
    larger than the margin;
  - **inconclusive**: otherwise; more seeds narrow the interval.

  A difference smaller than the margin that a plain t-test would call significant is still "equivalent": the
  margin says what size of difference matters.
- ``t_cdf`` / ``t_quantile``: Student's t distribution, from the regularized incomplete beta function
  (a continued fraction, as in Numerical Recipes' ``betacf``), so that no statistics package is needed.

Caveats: Welch's test assumes roughly normal means; with 5 seeds per side it is a rough guide, and accuracies near
1.0 are skewed. Only the standard library and numpy are used.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from twinbench.cell import Cell

VERDICTS = ("equivalent", "different", "inconclusive")


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz's method)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast below this point; use the symmetry above it
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),              # even step
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd step
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * result


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom (``df`` > 0, need not be whole)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive. Received: df={df}")
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``t`` with ``t_cdf(t, df) == p`` (0 < p < 1), by bisection."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1. Received: p={p}")
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > p:
        lo *= 2.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Equivalence:
    """The result of ``tost``: the difference of means ``a - b``, its confidence interval and the verdict."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float  # the TOST p-value: the larger of the two one-sided p-values
    df: float
    margin: float
    alpha: float
    verdict: str  # one of VERDICTS


def tost(a, b, *, margin: float, alpha: float = 0.05) -> Equivalence:
    """Welch's two one-sided tests: is ``mean(a) - mean(b)`` within ``(-margin, +margin)``?

    Args:
        a, b: the samples (e.g. final accuracies, one per seed), at least two each.
        margin: the largest difference that does not matter, in the samples' unit (0.01 = 1 accuracy point).
        alpha: the level of each one-sided test; the interval reported is the ``1 - 2 alpha`` one.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"tost needs two one-dimensional samples of at least 2 values each. Received: sizes "
                         f"{a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("tost needs finite samples (no NaN or inf).")
    if not margin > 0:
        raise ValueError(f"margin must be positive. Received: margin={margin}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie between 0 and 0.5. Received: alpha={alpha}")
    difference = float(a.mean() - b.mean())
    var_a, var_b = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    se = math.sqrt(var_a + var_b)
    if se == 0.0:  # both sides constant: the difference is known exactly
        inside = abs(difference) < margin
        return Equivalence(difference, difference, difference, 0.0 if inside else 1.0, math.inf, margin, alpha,
                           "equivalent" if inside else "different")
    # Welch-Satterthwaite degrees of freedom (a side with zero variance contributes no term).
    df = (var_a + var_b) ** 2 / sum(v * v / (n - 1) for v, n in ((var_a, len(a)), (var_b, len(b))) if v > 0)
    p_lower = 1.0 - t_cdf((difference + margin) / se, df)  # H0: difference <= -margin
    p_upper = t_cdf((difference - margin) / se, df)  # H0: difference >= +margin
    half_width = t_quantile(1.0 - alpha, df) * se
    low, high = difference - half_width, difference + half_width
    if -margin < low and high < margin:
        verdict = "equivalent"
    elif high < -margin or low > margin:
        verdict = "different"
    else:
        verdict = "inconclusive"
    return Equivalence(difference, low, high, float(max(p_lower, p_upper)), float(df), margin, alpha, verdict)


REFERENCE = ("torch", "torch")  # every implementation is compared with the PyTorch twin of the same mode and data


def final_accuracies(records) -> dict[Cell, dict[int, float]]:
    """Successful training records -> ``{cell: {seed: final test accuracy}}``. A seed that ran more than once
    counts once (its latest record)."""
    table: dict = {}
    for record in sorted(records, key=lambda r: r.get("finished") or ""):
        if record.get("kind", "train") != "train" or record.get("status") != "ok":
            continue
        seeds = table.setdefault(Cell.of(record), {})
        seeds[int(record["config"]["seed"])] = float(record["results"]["accuracy_after"])
    return table


def equivalence_table(records, *, margin: float = 0.01, alpha: float = 0.05) -> str:
    """The TOST table of training records: per model, each implementation's final accuracy over seeds against the
    PyTorch twin's (difference in accuracy points, its ``1 - 2 alpha`` interval, the TOST p-value, the verdict)."""
    level = round(100 * (1 - 2 * alpha))
    accuracies = final_accuracies(records)
    if not accuracies:
        return "no successful training records"
    lines = [f"Final test accuracy over seeds; TOST against torch with margin +-{100 * margin:g} points, "
             f"alpha {alpha:g} ({level}% CI of the difference, in points)",
             f"{'model':<12} {'dataset':<8} {'implementation':<18} {'seeds':>5} {'mean acc':>8} {'sd':>5} "
             f"{'diff':>6} {f'{level}% CI':>16} {'p(TOST)':>7}  verdict"]
    for cell in sorted(accuracies, key=lambda c: c.sort_key):
        values = np.array(list(accuracies[cell].values()))
        sd = f"{100 * values.std(ddof=1):5.2f}" if len(values) > 1 else f"{'-':>5}"
        row = f"{cell.model:<12} {cell.dataset:<8} {cell.label:<18} {len(values):>5} {100 * values.mean():8.2f} {sd}"
        reference = accuracies.get(dataclasses.replace(cell, implementation=REFERENCE[0], backend=REFERENCE[1]))
        if cell.pair == REFERENCE:
            lines.append(f"{row}  (reference)")
        elif reference is None or len(values) < 2 or len(reference) < 2:
            lines.append(f"{row}  -- needs 2+ seeds of it and of torch")
        else:
            result = tost(values, list(reference.values()), margin=margin, alpha=alpha)
            ci = f"[{100 * result.ci_low:+.2f}, {100 * result.ci_high:+.2f}]"
            lines.append(f"{row} {100 * result.difference:+6.2f} {ci:>16} {result.p_value:7.3f}  {result.verdict}")
    return "\n".join(lines)
