"""From raw timestamps to the figures a record carries, with their spread (framework-neutral).

Both kinds of run use these helpers:

- ``twinbench train`` (kind ``"train"``) trains for some epochs; ``train_timing`` turns its per-epoch
  figures into: the first step (tracing/compilation), the steady-state step time (windows of many
  steps, synchronised only at their edges), epoch wall time, the gap between epochs (end of one epoch's
  training to the start of the next one's: evaluation, callbacks, the framework's own epoch handling),
  evaluation time and throughput.
- ``twinbench throughput`` (kind ``"throughput"``, ``twinbench.measuring.throughput``) times repeats of N steps.

Every figure that has several samples is a ``twinbench.stats.summarize`` dict (median, IQR, 95% CI, ...);
figures with one sample are plain floats. A throughput record's windows pair up as the schedule ran them
(``overhead_pairs``, ``feed_pairs``); ``profiler_overhead`` is the profiler's cost they show, in the record and, pooled
over runs, in the results (``twinbench.results.decompose``).
"""

from __future__ import annotations

import os

from twinbench.backends.base import GAP_PARTS
from twinbench.stats import summarize


def summarize_or_none(samples) -> dict | None:
    """``summarize(samples)``, or ``None`` when there are no samples."""
    samples = [s for s in samples if s is not None]
    return summarize(samples) if samples else None


def gap_parts(earlier: dict, later: dict) -> dict | None:
    """The time between two consecutive epochs (``EpochResult.as_dict()``), in parts that add up to it.

    The span runs from ``earlier``'s last synchronised step (``trained_at``) to ``later``'s synchronised start
    (``started_at``). Each event ``[part, t]`` of ``earlier["gap_events"]`` (and ``later``'s begin hook, which
    starts ``other``) opens its part at ``t``; a part lasts until the next event, so the parts add up to the span
    exactly and none is negative. Events outside the span are left out: Keras 3 re-shuffles a PyDataset and makes
    the next epoch's iterator *before* the epoch's last step is synchronised, inside the last window.

    Returns:
        ``{part: seconds}`` for every part of ``twinbench.backends.base.GAP_PARTS``, or ``None`` for a record without events.
    """
    start, end = earlier.get("trained_at"), later.get("started_at")
    if start is None or end is None or "gap_events" not in earlier:
        return None
    events = [("evaluation", start), *map(tuple, earlier["gap_events"])]
    if later.get("begin_entered_at") is not None:
        events.append(("other", later["begin_entered_at"]))
    events = sorted(((t, part) for part, t in events if start <= t <= end), key=lambda event: event[0])
    parts = dict.fromkeys(GAP_PARTS, 0.0)
    for (t, part), (t_next, _) in zip(events, [*events[1:], (end, None)], strict=True):
        parts[part] += t_next - t
    return parts


def _first_step_parts(epochs: list[dict], steady: dict | None) -> dict | None:
    """A later epoch's first step in parts: ``first_batch`` (synchronised start to the first batch in hand: the
    iterator's re-creation, the sampler's permutation, the first fetch) and ``retracing`` (what is left of the first
    step above the steady step: the framework tracing or compiling again; noise can make it slightly negative)."""
    later = [e for e in epochs[1:] if e.get("first_batch_at") is not None and e.get("first_step_s") is not None]
    if not later or steady is None:
        return None
    first_batch = [e["first_batch_at"] - e["started_at"] for e in later]
    return {"first_batch": summarize(first_batch),
            "retracing": summarize([e["first_step_s"] - fetch - steady["median"]
                                    for e, fetch in zip(later, first_batch, strict=True)])}


def train_timing(epochs: list[dict], *, batch_size: int) -> dict:
    """The timing figures of a training run from its per-epoch dicts (``EpochResult.as_dict()``).

    Returns:
        ``first_step_s`` (epoch 0's first step: includes tracing/compilation),
        ``first_step_later_epochs_s`` (the first step of the other epochs, for comparison),
        ``steady_step_s`` (seconds per step, one sample per full window of ``window_steps`` steps,
        all epochs), ``throughput_images_per_s`` (one sample per window), ``epoch_time_s``
        (``first``: epoch 0, includes compilation; ``later``: the other epochs), ``epoch_gap_s``
        (one sample per pair of consecutive epochs), ``eval_time_s`` (test-set evaluation after each
        epoch), ``epoch_gap_parts_s`` (each part of ``gap_parts`` over the same pairs: their means add up to
        the gap's mean), ``first_step_parts_s`` (``_first_step_parts``) and ``window_steps``.
    """
    if not epochs:
        return {"first_step_s": None, "first_step_later_epochs_s": None, "steady_step_s": None,
                "throughput_images_per_s": None, "epoch_time_s": {"first": None, "later": None},
                "epoch_gap_s": None, "epoch_gap_parts_s": None, "first_step_parts_s": None, "eval_time_s": None,
                "window_steps": None}
    window = epochs[0].get("window_steps") or 0
    step_times = [t / window for e in epochs for t in e.get("window_times_s") or []] if window else []
    gaps = [later["started_at"] - earlier["trained_at"] for earlier, later in zip(epochs, epochs[1:], strict=False)
            if later.get("started_at") is not None and earlier.get("trained_at") is not None]
    parts = [p for p in (gap_parts(earlier, later) for earlier, later in zip(epochs, epochs[1:], strict=False)) if p]
    steady = summarize_or_none(step_times)
    return {
        "first_step_s": epochs[0].get("first_step_s"),
        "first_step_later_epochs_s": summarize_or_none(e.get("first_step_s") for e in epochs[1:]),
        "steady_step_s": steady,
        "throughput_images_per_s": summarize_or_none(batch_size / t for t in step_times),
        "epoch_time_s": {"first": epochs[0]["train_time_s"],
                         "later": summarize_or_none(e["train_time_s"] for e in epochs[1:])},
        "epoch_gap_s": summarize_or_none(gaps),
        "epoch_gap_parts_s": {part: summarize([p[part] for p in parts]) for part in GAP_PARTS} if parts else None,
        "first_step_parts_s": _first_step_parts(epochs, steady),
        "eval_time_s": summarize_or_none(e["eval_time_s"] for e in epochs),
        "window_steps": window,
    }


def memory_figures(allocator: dict, profile: dict | None) -> dict:
    """Framework allocator peaks next to NVML's device memory and the host's peak RSS.

    ``allocator`` is ``runner.memory_stats()`` (empty on CPU, where the frameworks keep no counters);
    ``profile`` a ``Profiler.summary()``. ``attributed`` is NVML's word on whether our process was found
    in the device's process list (``None`` without NVML): when it is ``False``, only the whole-device
    figure is available.
    """
    fields = (profile or {}).get("fields") or {}
    peak = lambda name: (fields.get(name) or {}).get("peak")  # noqa: E731
    return {
        "allocator": allocator or None,
        "device_memory_used_peak_bytes": peak("memory_used_bytes"),
        "process_gpu_memory_peak_bytes": peak("process_memory_bytes"),
        "attributed": (profile or {}).get("attributed"),
        "host_peak_rss_bytes": (profile or {}).get("host_peak_rss_bytes"),
        "source": (profile or {}).get("source"),
    }


def host_load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (how busy the machine was; None where unavailable)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def timeline_segment(profiler, *, name: str, offset_s: float = 0.0) -> dict:
    """One profiler's samples, windows and markers, for the timeline sidecar."""
    summary = profiler.summary()
    return {"name": name, "profiler_enabled": profiler.enabled, "offset_s": offset_s,
            "samples": profiler.timeline(), "windows": summary["windows"], "markers": summary["markers"]}


# ----------------------------------------------------------------------------------------------------------
# The windows of a throughput record: their kind, which ran next to which (the schedule pairs them), and the
# profiler's cost they show (windows with its sampler on against windows with it off). The results read them too.
# ----------------------------------------------------------------------------------------------------------

# The profiler must cost less than this share of a step.
OVERHEAD_LIMIT = 0.01


def window_of(repeat: dict) -> str:
    """A throughput repeat's window kind: ``whole`` or ``compute`` (records before compute windows: ``whole``)."""
    return repeat.get("window", "whole")


def overhead_pairs(repeats: list[dict]) -> list[tuple[float, float]]:
    """``(on, off)`` step times of the whole windows the ABBA schedule runs next to each other (2k and 2k + 1)."""
    repeats = [r for r in repeats if window_of(r) == "whole"]
    pairs = []
    for first, second in zip(repeats[0::2], repeats[1::2], strict=False):
        if first["profiler"] != second["profiler"]:
            on, off = (first, second) if first["profiler"] else (second, first)
            pairs.append((on["step_s"], off["step_s"]))
    return pairs


def feed_pairs(repeats: list[dict]) -> list[tuple[float, float]]:
    """``(whole, compute)`` step times of each compute window and the whole window it was run next to.

    ``twinbench.measuring.throughput.window_schedule`` puts the k-th compute window after a whole window with the
    profiler on (k even) or before one (k odd); a compute window without such a neighbour has no pair.
    """
    pairs = []
    computes = [i for i, r in enumerate(repeats) if window_of(r) == "compute"]
    for k, i in enumerate(computes):
        j = i - 1 if k % 2 == 0 else i + 1
        if 0 <= j < len(repeats) and window_of(repeats[j]) == "whole" and repeats[j]["profiler"] == repeats[i]["profiler"]:
            pairs.append((repeats[j]["step_s"], repeats[i]["step_s"]))
    return pairs


def profiler_overhead(on: list[float], off: list[float], *, ratio_ci, pairs=()) -> dict | None:
    """The profiler's cost: step time with the sampler on / off, with a 95% CI.

    Two estimates. Unpaired: the ratio of the medians of all on and all off windows, with a bootstrap
    CI (``ratio``, ``ci_low``, ``ci_high``, ``overhead_pct``, ``ci_pct``). Paired (``paired``): the
    median of the per-pair ratios of windows run next to each other (``overhead_pairs``), with the
    distribution-free CI of ``summarize``; a slow drift of the machine cancels within each pair, so it
    is the sharper one on a busy machine, and it decides when there are at least 2 pairs.

    ``under_limit`` says whether the deciding estimate is under ``OVERHEAD_LIMIT`` (1%);
    ``shown_under_limit`` whether its whole CI is, i.e. whether the data *show* that the cost is under 1%
    rather than merely fail to show that it is above.
    """
    if not on or not off:
        return None
    result = ratio_ci(on, off)
    limit = 1.0 + OVERHEAD_LIMIT
    paired = None
    if len(pairs) >= 2:
        ratios = summarize([a / b for a, b in pairs])
        paired = {"n": ratios["n"], "ratio": ratios["median"], "ci_low": ratios["ci_low"],
                  "ci_high": ratios["ci_high"], "ci_method": ratios["ci_method"],
                  "overhead_pct": 100.0 * (ratios["median"] - 1.0),
                  "ci_pct": [100.0 * (ratios["ci_low"] - 1.0), 100.0 * (ratios["ci_high"] - 1.0)]}
    deciding = paired or result
    return {
        **result,
        "overhead_pct": 100.0 * (result["ratio"] - 1.0),
        "ci_pct": [100.0 * (result["ci_low"] - 1.0), 100.0 * (result["ci_high"] - 1.0)],
        "paired": paired,
        "decided_by": "paired" if paired else "unpaired",
        "limit_pct": 100.0 * OVERHEAD_LIMIT,
        "under_limit": deciding["ratio"] < limit,
        "shown_under_limit": deciding["ci_high"] < limit,
    }
