"""Where a difference in speed comes from: the overhead decomposition, with confidence intervals.

Five implementations of one model run the same training. Ratios between well-chosen pairs of them
separate the causes of a difference:

====================================  ===========================================================
ratio (time / time)                   what it isolates
====================================  ===========================================================
keras[torch] / torch                  Keras 3's overhead on PyTorch (same framework underneath)
keras[tensorflow] / tf_keras          Keras 3 versus Keras 2 (tf.keras) on TensorFlow
keras[tensorflow] / keras[torch]      the backend's effect for one and the same model definition
keras[jax] / keras[torch]             (the same, JAX against PyTorch)
keras[jax] / keras[tensorflow]        (the same, JAX against TensorFlow)
torch / tf_keras                      the gap between the two native implementations
====================================  ===========================================================

A ratio above 1 means the first is slower. Each ratio is ``twinbench.stats.ratio_ci``: the ratio of the
medians with a bootstrap 95% CI; a difference is called only when the CI excludes 1.0, and a verdict is given only
from a quiet machine and a resolved ratio (``twinbench.results.verdict``); the ratio and its CI are shown either way.

Cells in another execution mode (``twinbench.backends.modes.Mode``: ``--jit``, ``--precision``, ``--data-format``,
``--memory-format``) are never compared across modes silently: the ratios above are taken within one mode
(``keras[torch] jit=on / torch jit=on``), and the **mode effects** compare one implementation with itself in two
modes that differ in one axis (``MODE_EFFECTS``): the compile effect (``jit=on`` over not compiled: ``jit=off``, or
the default where it resolved to no compilation), the precision effect (mixed over float32) and the layout effect
(Keras channels first over channels last; PyTorch ``channels_last`` over contiguous); the process effect (a cell
interleaved with its environment's other cell over the same cell alone in its process) checks that interleaving
leaves a cell's step time as it is.

Samples: for a throughput record (``twinbench throughput``), seconds per step of each repeat with the profiler
on; for a training record (``twinbench train``), the training time of each epoch after the first (the first
one compiles). Several records of the same cell are pooled (``pooled``). This module imports no framework.

Interleaved records (``twinbench.measuring.interleave``: the two cells of an environment in one process, window by
window, their cells on the ``process="shared"`` axis) are compared only with each other, as every axis keeps its
values apart. Their windows pair up: one window of each cell per ABBA block of a process (``paired_windows``), and the
ratio's CI resamples those pairs (``twinbench.stats.paired_ratio_ci``), processes first when there are several.

Alternated records (``twinbench.measuring.alternate``: environments' short processes in ABBA blocks, each record
naming its slot in ``record["alternation"]``) pair across environments: the two processes, one of each cell, that
ran in one block of one sequence give one pair of their median step times (``alternated_pairs``), and the ratio's CI
resamples those pairs; each pair is one independent sample (``twinbench.results.verdict``).

**Several sources of one ratio, the sharper chosen.** A ratio may be measured more than one way: an in-environment
ratio from interleaved windows (``process="shared"``) and from separate processes (``own``); torch / tf_keras from
alternated processes of the torch and tensorflow environments and from the natives environment's process, where the
two native twins are interleaved window by window (``process="natives"``, ``twinbench.measuring.interleave``). Every
row is kept and shown; ``choose_sources`` marks one of them ``chosen``
(``CHOICE_RULE``): the row whose verdict was called (a quiet machine and a resolved ratio,
``twinbench.results.verdict``) with the narrowest 95% CI; where none was called, the narrowest among those not
busy; where all were busy, the narrowest. The other rows say which source was chosen instead of giving their own
verdict, and the timing verdicts count the chosen row only.

**Resolution per minute.** Each ratio row also says how sharp it is for the machine time it took:
``half_width_pct`` (half the CI's width, in % of the ratio), ``machine_min`` (the wall time of the records behind
it, ``finished - started``, each process counted once: the two records of an interleaved process share theirs) and
``resolution_pct_min`` = ``half_width_pct * sqrt(machine_min)``: the half-width one minute of machine time would give
if the interval narrows as one over the square root of the time spent (``±3%`` in a 10-minute benchmark is a
resolution of 9.5). The table shows ``±h% in m min``.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics

from twinbench.backends.environments import implementation_label, order
from twinbench.cell import AXES, Cell
from twinbench.measuring.timing import feed_pairs, overhead_pairs, profiler_overhead, window_of
from twinbench.results import verdict
from twinbench.stats import paired_ratio_ci, ratio_ci, summarize

# (numerator, denominator, what the ratio isolates); cells are (implementation, backend).
DECOMPOSITION = (
    (("keras", "torch"), ("torch", "torch"), "Keras 3 overhead on PyTorch"),
    (("keras", "tensorflow"), ("tf_keras", "tensorflow"), "Keras 3 vs Keras 2 on TensorFlow"),
    (("keras", "tensorflow"), ("keras", "torch"), "backend effect: tensorflow vs torch"),
    (("keras", "jax"), ("keras", "torch"), "backend effect: jax vs torch"),
    (("keras", "jax"), ("keras", "tensorflow"), "backend effect: jax vs tensorflow"),
    (("torch", "torch"), ("tf_keras", "tensorflow"), "native gap: PyTorch vs tf.keras"),
)


# (axis, value, baseline, what the ratio value / baseline isolates): one implementation against itself.
MODE_EFFECTS = (
    ("jit", "on", "off", "compile effect: compiled / not compiled"),
    ("precision", "tf32", "float32", "precision effect: TF32 / float32"),
    ("precision", "mixed_bfloat16", "float32", "precision effect: mixed bfloat16 / float32"),
    ("precision", "mixed_float16", "float32", "precision effect: mixed float16 / float32"),
    ("data_format", "channels_first", "channels_last", "layout effect: Keras channels first / channels last"),
    ("memory_format", "channels_last", "contiguous", "layout effect: torch.channels_last / contiguous"),
    ("process", "shared", "own", "process effect: interleaved in one process / own process"),
    ("process", "natives", "own", "process effect: interleaved with the other native twin / own process"),
)


def label(cell: tuple[str, str], axes: tuple = ()) -> str:
    """The label of an (implementation, backend) pair in a mode (``axes_key``): ``keras[torch] jit=on``."""
    return " ".join([implementation_label(*cell), *(f"{name}={value}" for name, value in axes)])


def axes_key(record: dict) -> tuple:
    """The axes a record's cell sets off their defaults, as a sortable tuple: ``(("jit", "on"),)``."""
    return tuple(Cell.of(record).axes.items())


# What a sample times (``part``): the whole step (the real feed and the train step), or the train step alone on
# batches already on the device (``Runner.compute_steps``; throughput records with compute windows only).
PARTS = ("whole", "compute")


def sample_windows(record: dict, *, part: str = "whole") -> list[dict]:
    """The timed windows whose times a record contributes to a ratio: throughput repeats, or a training record's
    epochs after the first (each with its ``contention`` where it was counted).

    ``part`` (``PARTS``): ``whole``, the profiler-on whole windows of a throughput record (or a training record's
    epochs); ``compute``, its compute windows (none in a training record or an older throughput record).
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}. Received: part={part!r}.")
    if record.get("kind") == "throughput":
        repeats = (record.get("timing") or {}).get("repeats") or []
        if part == "compute":
            return [r for r in repeats if window_of(r) == "compute"]
        return [r for r in repeats if r["profiler"] and window_of(r) == "whole"]
    if part == "compute":
        return []
    return ((record.get("results") or {}).get("epochs") or [])[1:]


def time_samples(record: dict, *, part: str = "whole") -> tuple[list[float], str]:
    """The timing samples a record contributes to a ratio (``sample_windows``' times), and what they are (in words)."""
    windows = sample_windows(record, part=part)
    if record.get("kind") == "throughput" or part == "compute":
        what = "s/step per compute window" if part == "compute" else "s/step per repeat"
        return [r["step_s"] for r in windows], what
    return [e["train_time_s"] for e in windows], "s/epoch, epochs after the first"


def runs_contention(records: list[dict], *, part: str = "whole") -> dict:
    """``verdict.cell_contention`` of the sample windows of one cell's runs, pooled."""
    return verdict.cell_contention([w for record in records for w in sample_windows(record, part=part)])


def group_key(record: dict) -> tuple:
    """Records compared with each other: same kind, model, dataset, batch size, input shape and mode (``axes_key``)."""
    config = record.get("config") or {}
    return (record.get("kind", "train"), record["cell"]["model"], record["cell"]["dataset"],
            config.get("batch_size"), tuple((record.get("model") or {}).get("input_shape") or ()), axes_key(record))


def pooled(records: list[dict]) -> dict[tuple, dict[tuple[str, str], list[dict]]]:
    """Successful records by ``group_key`` (its last item: the mode), then by cell ``(implementation, backend)``.

    Several records of one cell (e.g. the rounds of the study ``cpu``, each a separate process
    run at a different time) are pooled: their samples are concatenated. Interleaving rounds of all
    cells spreads a slow drift of a shared machine over every implementation instead of one.
    """
    groups: dict[tuple, dict[tuple[str, str], list[dict]]] = {}
    for record in records:
        if record.get("status") == "ok":
            cell = (record["cell"]["implementation"], record["cell"]["backend"])
            groups.setdefault(group_key(record), {}).setdefault(cell, []).append(record)
    # The default mode first, then modes that set one axis, two, ...
    return dict(sorted(groups.items(), key=lambda item: (*map(str, item[0][:-1]), len(item[0][-1]), str(item[0][-1]))))


def pooled_samples(records: list[dict], *, part: str = "whole") -> tuple[list[float], str]:
    """``time_samples`` of several records of one cell, concatenated."""
    samples, what = [], ""
    for record in records:
        more, what = time_samples(record, part=part)
        samples += more
    return samples, what


def run_labels(records: list[dict], *, part: str = "whole") -> list[int]:
    """For ``pooled_samples(records)``: the index of the record (run) each sample came from."""
    return [index for index, record in enumerate(records) for _ in time_samples(record, part=part)[0]]


def decomposition(records: list[dict], *, part: str = "whole", seed: int = 0) -> list[dict]:
    """The decomposition rows of every group of comparable records (failed records are left out).

    Returns one dict per (group, ratio) that both cells have samples for: ``model, kind, dataset,
    batch_size, numerator, denominator, meaning, samples, runs_a, runs_b`` (what was compared) and
    ``ratio_ci``'s ``ratio, ci_low, ci_high, differs, verdict, n_a, n_b``, ``resolution``'s keys and
    ``verdict.judge``'s (``verdict`` is replaced by why there is none where the machine was busy or the ratio is
    unresolved: ``verdict_status``). A ratio needs at least 2 samples per side. With several runs of a cell, the bootstrap resamples the runs as well as the
    samples within them (``ratio_ci``'s ``runs_a``/``runs_b``), so the spread between processes counts.
    ``part`` (``PARTS``): which samples (``time_samples``); each row says it as ``part``.
    """
    rows = []
    groups = pooled(records)
    for (kind, model, dataset, batch_size, input_shape, axes), cells in groups.items():
        # Interleaved cells (process=shared) meet the cells of another environment, which ran in their own processes
        # (keras[jax] always does), under both labels: a ratio across environments is never paired anyway.
        own_axes = _with_axis(axes, "process", AXES["process"])
        own = groups.get((kind, model, dataset, batch_size, input_shape, own_axes), {}) if own_axes != axes else {}
        for numerator, denominator, meaning in DECOMPOSITION:
            sides = [(cells[pair], axes) if pair in cells else (own.get(pair), own_axes)
                     for pair in (numerator, denominator)]
            if numerator[1] == denominator[1]:  # one environment: both sides from this group only
                sides = [(cells.get(pair), axes) for pair in (numerator, denominator)]
            (a_runs, a_axes), (b_runs, b_axes) = sides
            if a_runs and b_runs and axes in (a_axes, b_axes):  # not both from the other group (it has its row)
                rows += _ratio_row(a_runs, b_runs, seed=seed, meaning=meaning,
                                   labels=(label(numerator, a_axes), label(denominator, b_axes)),
                                   where=(model, kind, dataset, batch_size), part=part)
    return choose_sources(rows) + mode_effects(groups, seed=seed, part=part)


CHOICE_RULE = ("Where one ratio was measured from several sources (interleaved windows of one process, alternated or "
               "separate processes; torch / tf_keras also from the natives environment's process, both twins "
               "interleaved), every row is shown and the chosen one speaks: "
               "among the rows with a verdict (quiet and resolved), the narrowest 95% CI; without one, the narrowest "
               "among those not busy; else the narrowest.")


def ratio_key(row: dict) -> tuple:
    """What a decomposition row estimates, whatever its source: where, the meaning, and the two cells' labels without
    their ``process`` axis (``torch process=natives`` and ``torch process=shared`` are both ``torch``)."""
    def bare(text):
        return " ".join(word for word in text.split() if not word.startswith("process="))

    return (row["model"], row["kind"], row["dataset"], row["batch_size"], row["meaning"], bare(row["numerator"]),
            bare(row["denominator"]))


def choose_sources(rows: list[dict]) -> list[dict]:
    """``rows`` with ``chosen`` set on every row (``CHOICE_RULE``): ``True`` where it is the only row of its ratio
    (``ratio_key``) or the one chosen among several, ``False`` on the others, whose ``verdict`` then names the chosen
    source (``verdict_status`` ``not_chosen``; their own verdict stays as ``own_verdict``)."""
    by_ratio: dict[tuple, list[dict]] = {}
    for row in rows:
        by_ratio.setdefault(ratio_key(row), []).append(row)
    for same in by_ratio.values():
        called = [row for row in same if row.get("verdict_status") == verdict.CALLED]
        quiet = [row for row in same if row.get("verdict_status") != verdict.BUSY]
        best = min(called or quiet or same, key=lambda row: row["half_width_pct"])
        for row in same:
            row["chosen"] = row is best
            if row is not best:
                row["own_verdict"], row["own_verdict_status"] = row.get("verdict"), row.get("verdict_status")
                row["verdict_status"] = NOT_CHOSEN
                row["verdict"] = (f"not chosen (±{row['half_width_pct']:.1f}%): {best['numerator']} / "
                                  f"{best['denominator']} is sharper (±{best['half_width_pct']:.1f}%)")
    return rows


NOT_CHOSEN = "not_chosen"  # a row's ``verdict_status`` where another source of its ratio was chosen


def _ratio_row(a_runs, b_runs, *, seed, meaning, labels, where, part="whole") -> list[dict]:
    """``[row]`` of the ratio of two cells' pooled samples, or ``[]`` with fewer than 2 samples on a side; paired
    (``paired_windows``) where the two cells ran interleaved in the same processes (whole windows: interleaved runs
    have no compute windows)."""
    a, what = pooled_samples(a_runs, part=part)
    b, _ = pooled_samples(b_runs, part=part)
    if len(a) < 2 or len(b) < 2:
        return []
    pairs = paired_windows(a_runs, b_runs) if part == "whole" else None
    alternated = alternated_pairs(a_runs, b_runs, part=part) if pairs is None else None
    if pairs is not None and len(pairs) >= 2:
        result = paired_ratio_ci([(x, y) for x, y, _ in pairs], runs=[process for _, _, process in pairs], seed=seed)
        what += ", paired by ABBA block"
    elif alternated is not None and len(alternated) >= 2:  # each pair of adjacent processes: one independent sample
        result = paired_ratio_ci(alternated, seed=seed)
        what = f"{what.replace(' per repeat', '')}, median per process, paired by alternated ABBA block of processes"
    else:
        result = ratio_ci(a, b, seed=seed, runs_a=run_labels(a_runs, part=part), runs_b=run_labels(b_runs, part=part))
    model, kind, dataset, batch_size = where
    row = {"model": model, "kind": kind, "dataset": dataset, "batch_size": batch_size,
           "numerator": labels[0], "denominator": labels[1], "meaning": meaning, "samples": what,
           "runs_a": len(a_runs), "runs_b": len(b_runs), **result,
           **resolution(result, machine_minutes([*a_runs, *b_runs]))}
    # No verdict from a busy machine or an unresolved ratio (twinbench.results.verdict); the ratio and CI stay.
    row.update(verdict.judge(row, [(labels[0], runs_contention(a_runs, part=part)),
                                   (labels[1], runs_contention(b_runs, part=part))]))
    if part != "whole":  # rows of the whole step keep their keys (committed pages are made of them)
        row["part"] = part
    return [row]


def paired_windows(a_runs: list[dict], b_runs: list[dict]) -> list[tuple[float, float, str]] | None:
    """``(a, b, process)`` step times of the windows two cells ran in one ABBA block of one process, or ``None``
    unless every record of both cells is interleaved and each process has one record of each cell.

    A process of ``k`` cells runs its windows in blocks of ``k`` (``twinbench.measuring.interleave.abba_order``); the
    window at ``window_index`` ``i`` is in block ``i // k``. Windows without a partner in their block are left out.
    """
    def by_process(runs):
        found = {}
        for record in runs:
            info = record.get("interleaved")
            if not info or info["process"] in found:
                return None
            found[info["process"]] = record
        return found

    a_by, b_by = by_process(a_runs), by_process(b_runs)
    if a_by is None or b_by is None or set(a_by) != set(b_by):
        return None
    pairs = []
    for process, a_record in a_by.items():
        cells = 1 + len(a_record["interleaved"]["with"])
        a_blocks, b_blocks = _blocks(a_record, cells), _blocks(b_by[process], cells)
        pairs += [(a_blocks[block], b_blocks[block], process) for block in sorted(a_blocks) if block in b_blocks]
    return pairs


def alternated_pairs(a_runs: list[dict], b_runs: list[dict], *, part: str = "whole") -> list[tuple[float, float]] | None:
    """``(a, b)``: the median step times of the two processes, one of each cell, that ran in one block of an
    alternated sequence (``twinbench.measuring.alternate``: environments' processes in ABBA order), or ``None``
    unless every record of both cells names its slot (``record["alternation"]``) and the two cells ran in different
    processes (one process's two cells pair by window: ``paired_windows``).

    Pairs are matched by ``(sequence, block)``; a block where either process failed (or ran twice) has no pair.
    """
    def by_block(runs):
        found = {}
        for record in runs:
            slot = record.get("alternation")
            if not slot:
                return None
            samples = time_samples(record, part=part)[0]
            if samples:
                found.setdefault((slot["sequence"], slot["block"]), []).append(
                    (slot["slot"], statistics.median(samples)))
        return found

    a_by, b_by = by_block(a_runs), by_block(b_runs)
    if a_by is None or b_by is None:
        return None
    pairs = []
    for key in sorted(set(a_by) & set(b_by)):
        (a_slot, a), (b_slot, b) = a_by[key][0], b_by[key][0]
        if len(a_by[key]) > 1 or len(b_by[key]) > 1 or a_slot == b_slot:
            continue  # not one process of each cell in the block
        pairs.append((a, b))
    return pairs


def _blocks(record: dict, cells: int) -> dict[int, float]:
    """ABBA block -> step time of an interleaved record's whole windows (``window_index // cells``)."""
    return {r["window_index"] // cells: r["step_s"] for r in record["timing"]["repeats"]
            if r.get("window", "whole") == "whole" and r.get("profiler", True) and "window_index" in r}


def machine_minutes(records: list[dict]) -> float | None:
    """Wall time of ``records`` (``finished - started``) in minutes, each process once (interleaved records of one
    process share it); ``None`` when a record lacks either time."""
    seconds = {}
    for record in records:
        try:
            span = (_dt.datetime.fromisoformat(record["finished"]) - _dt.datetime.fromisoformat(record["started"]))
        except (KeyError, TypeError, ValueError):
            return None
        process = (record.get("interleaved") or {}).get("process") or record.get("run_id") or id(record)
        seconds[process] = span.total_seconds()
    return sum(seconds.values()) / 60.0


def resolution(result: dict, minutes: float | None) -> dict:
    """``half_width_pct``, ``machine_min`` and ``resolution_pct_min`` (``half_width_pct * sqrt(machine_min)``) of a
    ratio ``result`` (``ratio_ci``'s keys): see the module docstring."""
    half = 100.0 * (result["ci_high"] - result["ci_low"]) / 2.0 / result["ratio"]
    return {"half_width_pct": half, "machine_min": minutes,
            "resolution_pct_min": half * math.sqrt(minutes) if minutes is not None else None}


def mode_effects(groups: dict, *, seed: int = 0, part: str = "whole") -> list[dict]:
    """The ``MODE_EFFECTS`` rows of ``pooled`` groups: each implementation in a mode over itself in the mode that
    differs from it in that one axis only. Not compiled (``jit=off``) may be the default mode's run where the
    record says compilation resolved to off (eager PyTorch, Keras' "auto" on torch and on a CPU's tensorflow)."""
    rows = []
    for (kind, model, dataset, batch_size, input_shape, axes), cells in groups.items():
        for axis, value, baseline, meaning in MODE_EFFECTS:
            if dict(axes).get(axis) != value:
                continue
            for pair, runs in sorted(cells.items(), key=lambda item: order(*item[0])):
                base_axes = _with_axis(axes, axis, baseline)
                base_runs = groups.get((kind, model, dataset, batch_size, input_shape, base_axes), {}).get(pair)
                if not base_runs and axis == "jit":  # the default mode, where it compiled nothing
                    base_axes = _with_axis(axes, "jit", AXES["jit"])
                    base_runs = [r for r in groups.get((kind, model, dataset, batch_size, input_shape, base_axes),
                                                       {}).get(pair, [])
                                 if (r.get("settings") or {}).get("jit_compile") is False]
                if base_runs:
                    rows += _ratio_row(runs, base_runs, seed=seed, meaning=meaning,
                                       labels=(label(pair, axes), label(pair, base_axes)),
                                       where=(model, kind, dataset, batch_size), part=part)
    return rows


def _with_axis(axes: tuple, axis: str, value) -> tuple:
    """``axes`` (an ``axes_key``) with ``axis`` set to ``value`` (left out at its default), in ``AXES`` order."""
    changed = {**dict(axes), axis: value}
    return tuple((name, changed[name]) for name in AXES if name in changed and changed[name] != AXES[name])


def throughput_rows(records: list[dict]) -> list[dict]:
    """Per cell of throughput records, pooled over runs: step time, throughput and the profiler's cost.

    Each row: ``model, batch_size, label, runs, first_step_s`` (median over runs), ``steady_step_s`` and
    ``throughput_images_per_s`` (``summarize`` of the pooled whole windows with the profiler on),
    ``profiler_overhead`` (``profiler_overhead`` of the pooled on/off whole windows and pairs),
    ``jit_compile``, ``page_faults_per_step`` (median over the whole windows; None in records from before it),
    ``compute_step_s`` and ``feed_step_s`` (``feed_pairs``; both None without compute windows), ``contention``
    (``verdict.contention_text``: ``quiet``, ``busy 3/12`` or ``not recorded``).
    """
    rows = []
    for (kind, model, _, batch_size, _, axes), cells in pooled(records).items():
        if kind != "throughput":
            continue
        for cell in sorted(cells, key=lambda pair: order(*pair)):
            runs = cells[cell]
            repeats = [r for record in runs for r in record["timing"]["repeats"] if window_of(r) == "whole"]
            on = [r["step_s"] for r in repeats if r["profiler"]]
            off = [r["step_s"] for r in repeats if not r["profiler"]]
            pairs = [pair for record in runs for pair in overhead_pairs(record["timing"]["repeats"])]
            parts = feed_and_compute(runs)
            rows.append({
                "model": model, "batch_size": batch_size, "label": label(cell, axes), "runs": len(runs),
                "first_step_s": statistics.median(r["timing"]["first_step_s"] for r in runs),
                "steady_step_s": summarize(on),
                "throughput_images_per_s": summarize([batch_size / s for s in on]),
                "profiler_overhead": profiler_overhead(on, off, ratio_ci=ratio_ci, pairs=pairs),
                "jit_compile": (runs[0].get("settings") or {}).get("jit_compile"),
                # Minor page faults per step of the whole windows (records from before they were counted: None).
                "page_faults_per_step": statistics.median(faults) if (faults := [
                    r["page_faults_per_step"] for r in repeats if r.get("page_faults_per_step") is not None]) else None,
                # Busy windows / counted windows among the timed ones (twinbench.measuring.contention).
                "contention": verdict.contention_text(runs_contention(runs)),
                "compute_step_s": parts["compute"],  # the train step alone
                "feed_step_s": parts["feed"],  # whole - compute, window pairs
                "efficiency": runs[0].get("efficiency"),  # FLOPs per image and the device's peak (twinbench.measuring.mfu)
                # Share of the time the sampler thread spent in its own calls (median over profiled windows).
                "sampler_busy_fraction": statistics.median(
                    busy for record in runs
                    if (busy := (((record.get("profile") or {}).get("sampler_busy_fraction") or {}).get("median")))
                    is not None) if any(record.get("profile") for record in runs) else None,
            })
    return rows


# Why whole - compute is not the whole cost of TensorFlow's native feed (measured: docs/overhead.md).
TF_NATIVE_FEED_NOTE = (
    "TensorFlow cells with the native feed (Sequence/PyDataset, which reach tf.data through from_generator): with it "
    "in the process, glibc's malloc hands TensorFlow's per-step buffers back to the OS, and every later step, the "
    "compute windows included, faults fresh pages in (see 'page faults/step'; 1.9x slower for cifar_cnn on the 2-core "
    "VM, and none of it with the allocator told to keep its memory: twinbench study run malloc), so whole - compute "
    "leaves that cost out; the same cell with --feed arrays shows it (docs/overhead.md).")


def lasting_feed_cost(records: list[dict]) -> bool:
    """True when a TensorFlow throughput record fed natively has compute windows: ``TF_NATIVE_FEED_NOTE`` applies."""
    return any(record.get("kind") == "throughput" and (record.get("cell") or {}).get("backend") == "tensorflow"
               and (record.get("cell") or {}).get("feed", AXES["feed"]) == "native"
               and any(window_of(r) == "compute" for r in (record.get("timing") or {}).get("repeats") or [])
               for record in records)


def feed_and_compute(runs: list[dict]) -> dict:
    """``{"whole", "compute", "feed"}``: ``summarize`` (seconds per step) of one cell's runs pooled; ``feed`` over the
    differences whole - compute of the windows run next to each other (``feed_pairs``). None where a record has no
    compute windows (records made before them, training records)."""
    whole, compute = pooled_samples(runs)[0], pooled_samples(runs, part="compute")[0]
    feed = [w - c for record in runs if record.get("kind") == "throughput"
            for w, c in feed_pairs((record.get("timing") or {}).get("repeats") or [])]
    return {"whole": summarize(whole) if whole else None, "compute": summarize(compute) if compute else None,
            "feed": summarize(feed) if feed else None}


def decomposition_table(rows: list[dict]) -> str:
    """The decomposition as plain text, one line per ratio."""
    if not rows:
        return "(no decomposition: it needs two implementations with at least 2 samples each)"
    headers = ["model", "batch", "time ratio", "ratio", "95% CI", "n", "runs", "resolution", "contention",
               "what it isolates", "verdict"]
    right = {"batch", "ratio", "95% CI", "n", "runs", "resolution"}
    table = [[row["model"], str(row["batch_size"]), f"{row['numerator']} / {row['denominator']}",
              f"{row['ratio']:.3f}", f"{row['ci_low']:.3f}-{row['ci_high']:.3f}", f"{row['n_a']}/{row['n_b']}",
              f"{row['runs_a']}/{row['runs_b']}", _resolution_text(row), row.get("contention", "not recorded"),
              row["meaning"], _short_verdict(row)] for row in rows]
    widths = [max(len(line[i]) for line in [headers, *table]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, headers, strict=True))

    samples = sorted({row["samples"] for row in rows})
    return "\n".join([line(headers).rstrip(), line(["-" * w for w in widths]), *(line(r).rstrip() for r in table),
                      f"samples: {'; '.join(samples)}. ratio = median time of the first / the second (>1: slower); "
                      "a difference is called only when the 95% CI excludes 1; with several runs (processes) "
                      "of a cell the bootstrap resamples the runs too; interleaved cells (process=shared) pair their "
                      "windows by ABBA block. resolution: the CI's half-width in % of the ratio and the machine time "
                      "the records took (each process once). contention: busy windows / counted windows of each "
                      f"cell. {verdict.RULES}", *([CHOICE_RULE] if any(not row.get("chosen", True) for row in rows)
                                                 else [])])


def _resolution_text(row: dict) -> str:
    """``±2.1% in 9.8 min`` (``resolution``), or the half-width alone when the records lack their times."""
    half = f"±{row['half_width_pct']:.1f}%"
    return half if row.get("machine_min") is None else f"{half} in {row['machine_min']:.1f} min"


def _short_verdict(row: dict) -> str:
    """The verdict column: ``1.48x slower``, ``no measurable difference``, or why there is no verdict."""
    if row.get("verdict_status", verdict.CALLED) != verdict.CALLED:
        return row["verdict"]
    if not row["differs"]:
        return "no measurable difference"
    return f"{row['ratio']:.2f}x slower" if row["ratio"] > 1 else f"{1 / row['ratio']:.2f}x faster"
