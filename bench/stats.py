"""Honest statistics for benchmark repeats: medians, spreads and confidence intervals.

Timings are skewed (a step is sometimes much slower, never much faster), so twinbench reports the
**median** and the **interquartile range** (IQR) rather than mean +- std, and attaches a confidence
interval (CI) to every figure it compares.

- ``summarize(samples)`` describes one set of repeats. The 95% CI of the median is distribution-free:
  it uses two order statistics of the sorted samples, chosen from the Binomial(n, 1/2) distribution
  (the number of samples below the true median). It needs no assumption about the shape of the
  timings, but it only exists for n >= 6 at 95%; below that, ``summarize`` falls back to a bootstrap
  percentile interval and says so in ``ci_method`` (with 5 repeats or fewer, treat it as a rough guide).
- ``quantile_ci(samples, q)`` gives a percentile (p50, p90, p99 of per-call latencies) with the same kind of
  distribution-free interval: two order statistics chosen from the Binomial(n, q) distribution
  (``quantile_ci_ranks``). An extreme percentile needs many samples for a bound to exist (p99's upper bound at
  95%: n >= 368); a side without one is ``None``, never a guess.
- ``ratio_ci(a, b)`` compares two implementations: the ratio of medians ``median(a) / median(b)``
  with a bootstrap percentile CI (``a`` and ``b`` resampled independently). A difference is called
  only when the interval excludes 1.0.
- ``ratio_ci(a, b, runs_a=..., runs_b=...)``: when the samples come from several runs (processes),
  the bootstrap resamples whole runs first and then the samples within each chosen run (a two-stage,
  or cluster, bootstrap). Windows of one process share its state (memory layout, thread placement,
  the machine's load at that time) and vary less among themselves than between processes; resampling
  windows alone would then give an interval that is too narrow.

Caveats a reader should keep in mind:

- Repeats are assumed independent. Consecutive steps of one run are not quite independent (caches,
  clocks, thermal state), so prefer repeats of whole windows or epochs as samples, and several runs
  (processes) per implementation, passed with ``runs_a``/``runs_b`` so that their spread counts.
- The bootstrap percentile interval is approximate for small samples; with fewer than ~10 repeats per
  side the interval is too narrow rather than too wide.
- The median of an even number of samples is the mean of the two middle ones (numpy's convention).

Only numpy and the standard library are used. Measuring summarises a record's figures with it
(``twinbench.measuring.timing``) and the results compare them (``twinbench.results``): it sits below both.
"""

from __future__ import annotations

import math

import numpy as np


def _as_samples(samples, what: str = "samples") -> np.ndarray:
    """Return ``samples`` as a 1-D float array; raise ``ValueError`` if empty, not 1-D or not finite."""
    values = np.asarray(samples, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional. Received: shape={values.shape}")
    if values.size == 0:
        raise ValueError(f"{what} must not be empty.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite numbers (no NaN or inf). Received: {values.tolist()}")
    return values


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int, float] | None:
    """Ranks of the order-statistic confidence interval for the median.

    With the samples sorted, ``x_(1) <= ... <= x_(n)``, the interval ``[x_(lo), x_(hi)]`` with
    ``hi = n + 1 - lo`` contains the true median with probability
    ``P(lo <= B <= n - lo)`` where ``B ~ Binomial(n, 1/2)``. We pick the narrowest such interval
    (largest ``lo``) whose coverage is still at least ``confidence``.

    Args:
        n: number of samples.
        confidence: the minimum coverage wanted, e.g. 0.95.

    Returns:
        ``(lo, hi, coverage)`` with 1-based ranks and the exact coverage, or ``None`` when even
        ``[min, max]`` covers less than ``confidence`` (n < 6 at 95%).

    Example: n=10 gives ranks 2 and 9 (coverage 97.9%); n=20 gives ranks 6 and 15 (95.9%).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1. Received: n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1. Received: confidence={confidence}")
    alpha = 1.0 - confidence
    # Exact integer arithmetic: Python divides big integers with correct rounding.
    total = 2**n
    count_k = 1  # C(n, k), updated as k grows
    count_at_most_k = 0  # number of outcomes with B <= k
    lo = 0
    for k in range(0, n // 2 + 1):
        count_at_most_k += count_k
        # The interval with lower rank k + 1 leaves P(B <= k) outside on each side.
        if 2 * count_at_most_k / total > alpha:
            break
        lo = k + 1
        count_k = count_k * (n - k) // (k + 1)
    if lo == 0:
        return None
    # On leaving the loop, count_at_most_k counts B <= lo and count_k is C(n, lo).
    coverage = 1.0 - 2 * (count_at_most_k - count_k) / total
    return lo, n + 1 - lo, coverage


def _binomial_cdf(n: int, q: float) -> np.ndarray:
    """``P(B <= k)`` for ``k = 0..n``, ``B ~ Binomial(n, q)``: the terms in log space (no overflow for thousands of
    samples), then a running sum."""
    k = np.arange(n + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in k])
               + k * math.log(q) + (n - k) * math.log1p(-q))
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def quantile_ci_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None, float | None]:
    """Ranks of the order-statistic confidence interval for the ``q`` quantile (the median's, generalised).

    ``B ~ Binomial(n, q)`` counts the samples below the true quantile; ``[x_(lo), x_(hi)]`` contains it with
    probability ``P(lo <= B < hi)``. Each side leaves out at most ``(1 - confidence) / 2``: ``lo`` is the largest
    rank with ``P(B < lo) <= alpha/2``, ``hi`` the smallest with ``P(B >= hi) <= alpha/2``.

    Returns:
        ``(lo, hi, coverage)``: 1-based ranks, either ``None`` where no sample is far enough out (few samples for
        an extreme quantile), and the exact coverage when both exist (else ``None``).

    Example: n=100, q=0.9 gives ranks 84 and 96.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1. Received: n={n}")
    if not 0 < q < 1:
        raise ValueError(f"q must be between 0 and 1. Received: q={q}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1. Received: confidence={confidence}")
    tail = (1.0 - confidence) / 2
    cdf = _binomial_cdf(n, q)  # cdf[k] = P(B <= k)
    lo = max((rank for rank in range(1, n + 1) if cdf[rank - 1] <= tail), default=None)  # P(B < lo) = cdf[lo - 1]
    hi = min((rank for rank in range(1, n + 1) if 1.0 - cdf[rank - 1] <= tail), default=None)  # P(B >= hi)
    coverage = None if lo is None or hi is None else float(cdf[hi - 1] - cdf[lo - 1])
    return lo, hi, coverage


def quantile_ci(samples, q: float, *, confidence: float = 0.95) -> dict:
    """The ``q`` quantile of ``samples`` (numpy's linear interpolation) with its order-statistic CI.

    Returns ``q``, ``value``, ``ci_low``, ``ci_high`` (``None`` on a side without a rank: too few samples),
    ``ci_ranks``, ``ci_coverage`` (exact, or ``None``), ``ci_confidence`` and ``n``.
    """
    values = np.sort(_as_samples(samples))
    lo, hi, coverage = quantile_ci_ranks(values.size, q, confidence)
    return {"q": q, "value": float(np.quantile(values, q)), "n": int(values.size),
            "ci_low": None if lo is None else float(values[lo - 1]),
            "ci_high": None if hi is None else float(values[hi - 1]),
            "ci_ranks": [lo, hi], "ci_coverage": coverage, "ci_confidence": confidence}


def _bootstrap_medians(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``n_boot`` bootstrap resamples of ``values`` (one vectorised numpy call)."""
    indices = rng.integers(0, values.size, size=(n_boot, values.size))
    return np.median(values[indices], axis=1)


def _two_stage_bootstrap_medians(values: np.ndarray, runs, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``n_boot`` two-stage resamples: runs with replacement, then samples within each run.

    ``runs`` labels each value with the run (process) it came from. Each resample draws as many runs as
    there are, with replacement, and from each drawn run as many samples as it has, with replacement.
    """
    labels = np.asarray(runs)
    if labels.shape != values.shape:
        raise ValueError(f"runs must label every sample. Received: {labels.size} labels for {values.size} samples")
    groups = [values[labels == label] for label in dict.fromkeys(labels.tolist())]
    medians = np.empty(n_boot)
    for i in range(n_boot):
        chosen = rng.integers(0, len(groups), size=len(groups))
        medians[i] = np.median(np.concatenate(
            [groups[g][rng.integers(0, groups[g].size, size=groups[g].size)] for g in chosen]))
    return medians


def _side_medians(values, runs, n_boot, rng):
    """Bootstrap medians of one side of a ratio, and whether the runs were resampled."""
    if runs is not None and len(set(np.asarray(runs).tolist())) >= 2:
        return _two_stage_bootstrap_medians(values, runs, n_boot, rng), True
    return _bootstrap_medians(values, n_boot, rng), False


def summarize(samples, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Describe one set of repeats: median, quartiles, spread and a CI of the median.

    Args:
        samples: the measurements (e.g. seconds per epoch), any order.
        confidence: coverage of the median's confidence interval.
        n_boot: bootstrap resamples, used only when n is too small for the order-statistic interval.
        seed: seed of that bootstrap, so results are reproducible.

    Returns:
        A JSON-serialisable dict with ``n, median, q1, q3, iqr, mean, std, min, max`` (``std`` uses
        ``ddof=1``; it is 0.0 for a single sample), ``ci_low, ci_high, ci_confidence`` (the requested
        confidence), ``ci_coverage`` (the exact coverage of the order-statistic interval, or ``None``
        for the bootstrap), ``ci_method`` (in words) and ``ci_ranks`` (1-based ranks, or ``None``).

    Raises:
        ValueError: if ``samples`` is empty or contains NaN/inf.
    """
    values = np.sort(_as_samples(samples))
    n = int(values.size)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    result = {
        "n": n,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if n > 1 else 0.0,
        "min": float(values[0]),
        "max": float(values[-1]),
        "ci_confidence": confidence,
    }

    ranks = median_ci_ranks(n, confidence)
    if ranks is not None:
        lo, hi, coverage = ranks
        result.update(
            ci_low=float(values[lo - 1]),
            ci_high=float(values[hi - 1]),
            ci_coverage=coverage,
            ci_ranks=[lo, hi],
            ci_method="order statistics (distribution-free binomial interval)",
        )
    else:
        medians = _bootstrap_medians(values, n_boot, np.random.default_rng(seed))
        alpha = 1.0 - confidence
        low, high = np.percentile(medians, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        result.update(
            ci_low=float(low),
            ci_high=float(high),
            ci_coverage=None,
            ci_ranks=None,
            ci_method=(
                f"bootstrap percentile (n={n} is too small for an order-statistic interval at "
                f"{confidence:.0%}; approximate, likely too narrow)"
            ),
        )
    return result


def ratio_ci(
    a,
    b,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    labels: tuple[str, str] = ("slower", "faster"),
    runs_a=None,
    runs_b=None,
) -> dict:
    """Ratio of medians ``median(a) / median(b)`` with a bootstrap percentile confidence interval.

    ``a`` and ``b`` are resampled independently ``n_boot`` times; the CI is the central
    ``confidence`` share of the resampled ratios. When ``runs_a`` (``runs_b``) labels each sample of
    ``a`` (``b``) with the run it came from and there are at least two runs, that side is resampled in
    two stages, runs first (see the module docstring), so the spread between runs widens the interval
    as it should. The result is deterministic for a given ``seed``.

    Args:
        a: samples of the implementation under study (e.g. seconds per epoch of the Keras model).
        b: samples of the reference (e.g. seconds per epoch of the PyTorch twin). Both must be positive.
        n_boot: number of bootstrap resamples.
        seed: seed of the random generator.
        confidence: coverage of the interval.
        labels: words for a ratio above 1 and below 1. The default suits times (a larger time is
            slower); pass ``("faster", "slower")`` for throughputs.
        runs_a: optional run label (any hashable) per sample of ``a``, e.g. the record it came from.
        runs_b: the same for ``b``.

    Returns:
        A JSON-serialisable dict: ``ratio, ci_low, ci_high, confidence, differs`` (the CI excludes
        1.0), ``verdict`` (plain words, e.g. ``"1.23x slower (95% CI 1.10-1.37)"`` or
        ``"no measurable difference (95% CI 0.97-1.05)"``), ``median_a, median_b, n_a, n_b,
        runs_resampled`` (whether runs were resampled on each side), ``n_boot, seed, method``.
    """
    a = _as_samples(a, "a")
    b = _as_samples(b, "b")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("ratio_ci expects positive samples (times or throughputs).")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1. Received: confidence={confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1. Received: n_boot={n_boot}")

    rng = np.random.default_rng(seed)
    medians_a, two_stage_a = _side_medians(a, runs_a, n_boot, rng)
    medians_b, two_stage_b = _side_medians(b, runs_b, n_boot, rng)
    ratios = medians_a / medians_b
    alpha = 1.0 - confidence
    low, high = (float(x) for x in np.percentile(ratios, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
    median_a, median_b = float(np.median(a)), float(np.median(b))
    ratio = median_a / median_b
    return {
        **_ratio_result(ratio, low, high, confidence=confidence, labels=labels),
        "median_a": median_a,
        "median_b": median_b,
        "n_a": int(a.size),
        "n_b": int(b.size),
        "n_boot": n_boot,
        "seed": seed,
        "runs_resampled": [two_stage_a, two_stage_b],
        "method": "ratio of medians, bootstrap percentile interval (a and b resampled independently"
                  + ("; runs, then samples within runs" if two_stage_a or two_stage_b else "") + ")",
    }


def _ratio_result(ratio: float, low: float, high: float, *, confidence: float, labels: tuple[str, str]) -> dict:
    """``ratio, ci_low, ci_high, confidence, differs, verdict`` of a ratio and its interval (``ratio_ci``'s words)."""
    differs = not (low <= 1.0 <= high)
    ci_text = f"{confidence:.0%} CI {low:.2f}-{high:.2f}"
    if not differs:
        verdict = f"no measurable difference ({ci_text})"
    elif ratio > 1:
        verdict = f"{ratio:.2f}x {labels[0]} ({ci_text})"
    else:
        # A ratio of 0.80 reads better as "1.25x faster"; keep the interval on the ratio scale.
        verdict = f"{1 / ratio:.2f}x {labels[1]} (ratio {ratio:.2f}, {ci_text})"
    return {"ratio": ratio, "ci_low": low, "ci_high": high, "confidence": confidence, "differs": differs,
            "verdict": verdict}


def paired_ratio_ci(pairs, *, runs=None, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                    labels: tuple[str, str] = ("slower", "faster")) -> dict:
    """``median(a) / median(b)`` of paired samples, with a bootstrap CI that resamples the pairs.

    For windows run next to each other in one process (``twinbench.measuring.interleave``: one ABBA block's window of
    each cell), a drift of the machine or a slow process moves both sides of a pair alike; resampling whole pairs
    keeps that together, so it cancels in each resampled ratio instead of widening the interval as two independent
    resamples (``ratio_ci``) would. With ``runs`` (the process of each pair) naming at least two, the bootstrap
    resamples processes first, then pairs within each drawn process, so the spread between processes still counts.

    Args:
        pairs: ``(a, b)`` per pair, both positive (e.g. seconds per step of keras[torch] and torch in one block).
        runs: optional label per pair (the process it ran in).
        n_boot, seed, confidence, labels: as in ``ratio_ci``.

    Returns:
        ``ratio_ci``'s keys (``n_a`` = ``n_b`` = the number of pairs), ``paired: True`` and ``method``.
    """
    values = np.asarray(pairs, dtype=float).reshape(-1, 2)
    if values.shape[0] < 2:
        raise ValueError(f"paired_ratio_ci needs at least 2 pairs. Received: {values.shape[0]}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("paired_ratio_ci expects positive, finite samples (times or throughputs).")
    rng = np.random.default_rng(seed)
    labels_of = list(range(values.shape[0])) if runs is None else list(runs)
    if len(labels_of) != values.shape[0]:
        raise ValueError(f"runs must label every pair. Received: {len(labels_of)} labels for {values.shape[0]} pairs")
    groups = [np.flatnonzero(np.asarray([label == g for label in labels_of]))
              for g in dict.fromkeys(labels_of)] if runs is not None else []
    two_stage = runs is not None and len(groups) >= 2
    ratios = np.empty(n_boot)
    for i in range(n_boot):
        if two_stage:
            chosen = np.concatenate([groups[g][rng.integers(0, groups[g].size, size=groups[g].size)]
                                     for g in rng.integers(0, len(groups), size=len(groups))])
        else:
            chosen = rng.integers(0, values.shape[0], size=values.shape[0])
        ratios[i] = np.median(values[chosen, 0]) / np.median(values[chosen, 1])
    alpha = 1.0 - confidence
    low, high = (float(x) for x in np.percentile(ratios, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
    median_a, median_b = float(np.median(values[:, 0])), float(np.median(values[:, 1]))
    return {
        **_ratio_result(median_a / median_b, low, high, confidence=confidence, labels=labels),
        "median_a": median_a, "median_b": median_b, "n_a": int(values.shape[0]), "n_b": int(values.shape[0]),
        "n_boot": n_boot, "seed": seed, "runs_resampled": [two_stage, two_stage], "paired": True,
        "method": "ratio of medians, bootstrap percentile interval over pairs of windows run next to each other"
                  + ("; processes, then pairs within processes" if two_stage else ""),
    }


def linear_fit(points, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """A straight line through repeated measurements at several x: the fixed cost and the cost per unit of x.

    ``twinbench calls`` fits µs per layer call against the input's elements: the intercept is the fixed cost of a
    call (what a call costs when its kernel does nothing), the slope the cost per element.

    Args:
        points: ``[(x, samples), ...]``: at each x (at least two distinct x), the repeats measured there.
        confidence: coverage of the intervals.
        n_boot: bootstrap resamples: each resample draws every point's repeats with replacement, takes their
            medians and fits the line through them by least squares.
        seed: the bootstrap's seed.

    Returns:
        ``{"intercept", "slope"}``, each ``{"value", "ci_low", "ci_high"}`` (the fit through the medians and its
        bootstrap percentile interval), with ``points`` (x and the median there), ``ci_confidence`` and ``ci_method``.
    """
    xs = np.asarray([float(x) for x, _ in points])
    samples = [_as_samples(values, "samples at each x") for _, values in points]
    if len(set(xs.tolist())) < 2:
        raise ValueError(f"a line needs at least two distinct x. Received: x={xs.tolist()}")
    design = np.column_stack([np.ones_like(xs), xs])
    # Least squares through medians, as one matrix: (intercept, slope) = solve @ medians for every resample at once.
    solve = np.linalg.pinv(design)

    medians = np.asarray([np.median(values) for values in samples])
    intercept, slope = solve @ medians
    rng = np.random.default_rng(seed)
    # Every resample's medians (n_boot x points): each point's repeats drawn with replacement, n_boot times in one draw.
    resampled = np.column_stack([np.median(values[rng.integers(0, values.size, size=(n_boot, values.size))], axis=1)
                                 for values in samples])
    boot = resampled @ solve.T
    alpha = 1.0 - confidence
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return {"intercept": {"value": float(intercept), "ci_low": float(low[0]), "ci_high": float(high[0])},
            "slope": {"value": float(slope), "ci_low": float(low[1]), "ci_high": float(high[1])},
            "points": [{"x": float(x), "median": float(m)} for x, m in zip(xs, medians, strict=True)],
            "ci_confidence": confidence,
            "ci_method": "bootstrap percentile over each point's repeats; least squares through the medians"}
