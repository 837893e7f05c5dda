"""The report's figures (matplotlib, Agg backend: no display needed), one PNG per figure and group.

Every figure names the model, the dataset and the machine in its title, labels its axes with units, and
keeps one slot per implementation: a cell that is missing or failed is written as such where its data
would be, so a partial matrix reads as partial. Colours: one hue per framework underneath (PyTorch red,
TensorFlow orange, JAX blue); the native twin is solid, the Keras 3 definition hatched or dashed.

``twinbench.results.report`` calls ``draw_all``; this is the only module that imports matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from twinbench.backends.environments import LABELS
from twinbench.causes import FAMILIES
from twinbench.results import views
from twinbench.results.views import MISSING, Group, decomposition_rows

STYLE = {  # label -> (colour, native twin?)
    "torch": ("#c0392b", True),
    "keras[torch]": ("#e74c3c", False),
    "tf_keras": ("#d35400", True),
    "keras[tensorflow]": ("#f39c12", False),
    "keras[jax]": ("#2471a3", False),
}
# Line charts: twins that train identically draw on top of each other, so each has its own hollow marker,
# the first ones largest, and stays visible underneath the next.
MARKERS = {"torch": ("o", 9), "keras[torch]": ("s", 8), "tf_keras": ("^", 7), "keras[tensorflow]": ("D", 5.5),
           "keras[jax]": ("v", 4.5)}
DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "figure.titlesize": 12,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def draw_all(groups: list[Group], *, directory: Path, out_dir: Path) -> dict[str, Path]:
    """Draw every figure of every group; returns ``{name: path}`` (names as ``twinbench.results.report`` links them)."""
    plt = _plt()
    drawn = {}
    for group in groups:
        title = f"{group.title} — {views.machines(group.records.values())}"
        figures = {
            f"speed__{group.slug}": speed_figure(plt, group, title),
            f"decomposition__{group.slug}": decomposition_figure(plt, group, title),
            f"timeline__{group.slug}": timeline_figure(plt, group, title, directory),
            f"memory__{group.slug}": memory_figure(plt, group, title),
        }
        if group.kind == "train":
            figures[f"curves__{group.slug}"] = curves_figure(plt, group, title)
        for name, figure in figures.items():
            if figure is None:
                continue
            path = out_dir / f"{name}.png"
            figure.savefig(path, dpi=DPI, bbox_inches="tight")
            plt.close(figure)
            drawn[name] = path
    return drawn


def _status_text(ax, y, text):
    """Write why a row has no data (``missing``, ``failed: ...``) just right of the y axis, at data height ``y``."""
    ax.text(0.01, y, text, va="center", ha="left", fontsize=9, color="#555555", style="italic",
            transform=ax.get_yaxis_transform())


def _rows(ax, ys, labels):
    ax.set_yticks(ys, labels)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)


def _hbar(ax, values: dict, *, scale=1.0, unit="", fmt="{:.3g}", group: Group):
    """Horizontal bars, one row per implementation (top to bottom in LABELS order), with 95% CI whiskers."""
    ys = list(range(len(LABELS)))[::-1]
    top = max((v["ci_high"] for v in values.values() if v), default=1.0) * scale
    for y, label in zip(ys, LABELS, strict=True):
        summary = values.get(label)
        colour, native = STYLE[label]
        if not summary:
            status = group.status(label)
            _status_text(ax, y, status if status != "ok" else "no timing samples")
            continue
        median = summary["median"] * scale
        err = [[median - summary["ci_low"] * scale], [summary["ci_high"] * scale - median]]
        ax.barh(y, median, color=colour, hatch=None if native else "//", edgecolor="white", height=0.6)
        ax.errorbar(median, y, xerr=err, fmt="none", ecolor="black", capsize=4, lw=1.2)
        ax.text(summary["ci_high"] * scale + 0.02 * top, y, f"{fmt.format(median)} {unit}".strip() +
                f"  (n={summary['n']})", va="center", fontsize=9)
    _rows(ax, ys, LABELS)
    ax.set_xlim(0, top * 1.35)
    ax.grid(axis="x", alpha=0.3)


def speed_figure(plt, group: Group, title: str):
    """Time per step and throughput per implementation: median and 95% CI."""
    speeds = {label: views.speed(group.ok_runs(label)) for label in group.ok()}
    steps = {label: step for label, (step, _, _) in speeds.items()}
    rates = {label: rate for label, (_, rate, _) in speeds.items()}
    what = sorted({what for _, _, what in speeds.values()})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    largest = max((s["median"] for s in steps.values() if s), default=1.0)
    scale, unit = (1e3, "ms") if largest < 1 else (1.0, "s")
    _hbar(left, steps, scale=scale, unit=unit, group=group)
    left.set_xlabel(f"time per training step ({unit}; median, bars: 95% CI)")
    left.set_title("time per step (shorter is faster)")
    _hbar(right, rates, fmt="{:,.0f}", group=group)
    right.set_xlabel("training throughput (images per second; median, bars: 95% CI)")
    right.set_title("throughput (longer is faster)")
    fig.suptitle(f"Step time and throughput: {title}")
    if what:
        fig.text(0.01, -0.02, "samples: " + "; ".join(what), fontsize=8, color="#555555")
    fig.tight_layout()
    return fig


def decomposition_figure(plt, group: Group, title: str):
    """The overhead ratios of one group as a forest plot on a log axis, with the line of no difference."""
    from matplotlib.ticker import NullFormatter


    rows = decomposition_rows([group])
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.6))
    ys = list(range(len(rows)))[::-1]
    present = [r for r in rows if "missing" not in r]
    low = min([r["ci_low"] for r in present] + [0.8])
    high = max([r["ci_high"] for r in present] + [1.25])
    ax.axvline(1.0, color="black", lw=1)
    for y, row in zip(ys, rows, strict=True):
        if "missing" in row:
            _status_text(ax, y, row["missing"])
            continue
        status = row.get("verdict_status", "called")  # no verdict: busy machine or unresolved (results.verdict)
        called = status == "called"
        colour = "#7f8c8d" if not row["differs"] or not called else ("#c0392b" if row["ratio"] > 1 else "#27ae60")
        ax.errorbar(row["ratio"], y, xerr=[[row["ratio"] - row["ci_low"]], [row["ci_high"] - row["ratio"]]],
                    fmt="o", color=colour, ecolor=colour, capsize=4, lw=2, ms=7)
        words = {"busy": "machine busy: no verdict", "not_chosen": "not chosen: another source is sharper"}.get(
            status, "unresolved: no verdict") if not called else (
            "no measurable difference" if not row["differs"] else
            f"{row['ratio']:.2f}x slower" if row["ratio"] > 1 else f"{1 / row['ratio']:.2f}x faster")
        ax.text(row["ci_high"] * 1.03, y, words, va="center", fontsize=9, color=colour)
    ax.set_xscale("log")
    ax.set_xlim(low / 1.15, high * 1.9)
    fine = (0.4, 0.5, 0.6, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)
    coarse = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    ticks = [t for t in (fine if high / low < 6 else coarse) if low / 1.15 <= t <= high * 1.9]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    _rows(ax, ys, [f"{r['numerator']} / {r['denominator']}\n{r['meaning']}" for r in rows])
    ax.set_xlabel("ratio of median step times, log scale (>1: the first is slower; bars: 95% CI)")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.set_title(f"Where the time goes: {title}", fontsize=12)
    fig.tight_layout()
    return fig


SHADES = {"train": "#aed6f1", "train-odd": "#d6eaf8", "eval": "#d5d8dc", "build": "#fdebd0"}


def _shade(ax, windows, *, label_width=None):
    """Training epochs in alternating blues, evaluation grey, building the model beige.

    Epochs are numbered (from 1) where the window is at least ``label_width`` seconds wide.
    """
    for window in windows:
        name, start, end = window["name"], window["start_s"], window["end_s"]
        if name.startswith("train-epoch"):
            epoch = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else 0
            ax.axvspan(start, end, color=SHADES["train" if epoch % 2 == 0 else "train-odd"], lw=0)
            if label_width is not None and end - start >= label_width:
                ax.text((start + end) / 2, 0.97, f"epoch {epoch + 1}", ha="center", va="top", fontsize=7,
                        color="#1a5276", transform=ax.get_xaxis_transform(), clip_on=True)
        elif name.startswith("eval"):
            ax.axvspan(start, end, color=SHADES["eval"], lw=0)
        elif name.startswith("build"):
            ax.axvspan(start, end, color=SHADES["build"], lw=0)


def _cpu_limit(record) -> float | None:
    """100% per core the process could use: the y limit for CPU % (psutil's first reading can be far above)."""
    machine = (record.get("environment") or {}).get("machine") or {}
    cores = machine.get("cpu_affinity") or machine.get("cpu_count_logical")
    return 100.0 * cores if cores else None


def timeline_figure(plt, group: Group, title: str, directory: Path):
    """Utilisation and memory against time, one row per implementation, shared time axis, epochs shaded.

    Records without profiler samples still have their epochs' timestamps: if no record of the
    group has samples, one column shows the epochs alone.
    """
    from matplotlib.patches import Patch

    timelines = {label: views.timeline(r, directory) for label, r in group.ok().items()}
    sampled = any(t and t.samples for t in timelines.values())
    gpu = any(t and t.has_gpu for t in timelines.values())
    use_name, use_key = ("GPU utilisation (%)", "utilization_gpu") if gpu else (
        "CPU (% of one core; >100: several cores)", "cpu_percent")
    mem_name, mem_key = ("device memory (GiB)", "memory_used_bytes") if gpu else ("RSS (GiB)", "rss_bytes")
    columns = 2 if sampled else 1
    fig, axes = plt.subplots(len(LABELS), columns, figsize=(12, (1.45 if sampled else 0.9) * len(LABELS) + 1.3),
                             sharex=True, squeeze=False)
    span = max((w["end_s"] for t in timelines.values() if t for w in t.windows), default=1.0)
    for row, label in enumerate(LABELS):
        panels = axes[row]
        colour, _ = STYLE[label]
        panels[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10, color=colour, fontweight="bold")
        line = timelines.get(label)
        if line is None or not sampled or not line.samples:
            for ax in panels:
                ax.set_yticks([])
        if line is None:
            status = group.status(label)
            for ax in panels:
                ax.text(0.5, 0.5, status if status != "ok" else "no timeline in this record", transform=ax.transAxes,
                        ha="center", va="center", color="#555555", style="italic")
            continue
        _shade(panels[0], line.windows, label_width=0.09 * span)
        if not sampled:
            continue
        left, right = panels
        _shade(right, line.windows)
        if not line.samples:
            for ax in panels:
                ax.text(0.5, 0.4, "no profiler samples in this record (epochs from their timestamps)",
                        transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#555555", style="italic")
            continue
        samples = [s for s in line.samples if s.get(use_key) is not None]
        left.plot([s["t_s"] for s in samples], [s[use_key] for s in samples], color=colour, lw=1.2)
        memory = [s for s in line.samples if s.get(mem_key) is not None]
        right.plot([s["t_s"] for s in memory], [s[mem_key] / 2**30 for s in memory], color=colour, lw=1.2)
        right.set_ylim(bottom=0)
        if gpu:
            left.set_ylim(0, 105)
        else:  # psutil's first reading covers a tiny interval and can read thousands of %: keep the axis sane
            limit = _cpu_limit(group.records[label])
            top = max((s[use_key] for s in samples), default=100.0)
            clipped = limit is not None and top > 1.5 * limit
            left.set_ylim(0, 1.1 * (limit if clipped else top))
            if clipped:
                left.text(0.99, 0.05, f"axis clipped: a reading of {top:,.0f}%", transform=left.transAxes, ha="right",
                          fontsize=7, color="#777777")
    if sampled:
        axes[0][0].set_title(use_name)
        axes[0][1].set_title(mem_name)
    else:
        axes[0][0].set_title("training and evaluation of each epoch (these records carry no profiler samples)")
    for ax in axes[-1]:
        ax.set_xlabel("time since the run started (s)")
    handles = [Patch(color=SHADES["build"], label="build model"), Patch(color=SHADES["train"], label="training epoch"),
               Patch(color=SHADES["eval"], label="evaluation"),
               Patch(facecolor="white", edgecolor="#999999", label="between epochs / other")]
    fig.suptitle(f"Timeline: {title}")
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def curves_figure(plt, group: Group, title: str):
    """Training loss (log scale) and test accuracy per epoch, every implementation on one chart."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    absent = []
    for label in LABELS:
        record = group.ok().get(label)
        curve = views.epoch_curves(record) if record else []
        if not curve:
            absent.append(f"{label} ({group.status(label)})" if group.status(label) != "ok" else f"{label} (no epochs)")
            continue
        colour, native = STYLE[label]
        marker, size = MARKERS[label]
        style = dict(color=colour, ls="-" if native else "--", marker=marker, ms=size, mfc="none", mew=1.4, lw=1.4,
                     label=label)
        epochs = [p["epoch"] for p in curve]
        left.plot(epochs, [p["loss"] for p in curve], **style)
        right.plot(epochs, [100 * p["test_accuracy"] for p in curve], **style)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (mean cross-entropy, log scale)")
    left.set_title("training loss")
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy (%)")
    right.set_title("test accuracy after each epoch")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if any(ax.get_lines() for ax in (left, right)):
        right.legend(fontsize=9, loc="lower right")
    if absent:
        fig.text(0.01, -0.03, f"{MISSING}: " + "; ".join(absent), fontsize=8.5, color="#555555", style="italic")
    fig.suptitle(f"Training curves: {title}\n(markers on top of each other: those implementations trained to the "
                 f"same numbers)", fontsize=11)
    fig.tight_layout()
    return fig


def memory_figure(plt, group: Group, title: str):
    """Peak memory per implementation: framework allocator, device (NVML), host RSS; n/a where not measured.

    A kind of figure no record of the group has (no GPU: no allocator, no device) is left out and named below.
    """
    from matplotlib.patches import Patch

    kinds = [("allocator", "framework allocator", "#5d6d7e"), ("device", "device (NVML)", "#16a085"),
             ("host", "host RSS", "#8e44ad")]
    peaks = {label: views.memory_peaks(r) for label, r in group.ok().items()}
    absent = [name for key, name, _ in kinds if not any(p[key] for p in peaks.values())]
    kinds = [kind for kind in kinds if kind[1] not in absent]
    if not kinds:
        return None  # nothing measured (no profiler on a CPU machine): the report says so
    fig, ax = plt.subplots(figsize=(11, (0.3 + 0.25 * len(kinds)) * len(LABELS) + 1.4))
    height = 0.8 / len(kinds)
    top = max(v for p in peaks.values() for v in p.values() if v) / 2**20
    ys = list(range(len(LABELS)))[::-1]
    for y, label in zip(ys, LABELS, strict=True):
        if label not in peaks:
            _status_text(ax, y, group.status(label))
            continue
        for i, (key, name, colour) in enumerate(kinds):
            offset = ((len(kinds) - 1) / 2 - i) * height
            value = peaks[label][key]
            if value is None:
                ax.text(0.01, y + offset, f"{name}: n/a", va="center", fontsize=8, color="#777777",
                        transform=ax.get_yaxis_transform())
                continue
            ax.barh(y + offset, value / 2**20, height=height * 0.9, color=colour)
            ax.text(value / 2**20 + top * 0.01, y + offset, f"{value / 2**20:,.0f}", va="center", fontsize=8)
    _rows(ax, ys, LABELS)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("peak memory (MiB)" + (f"; not measured here: {', '.join(absent)}" if absent else ""))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color=c, label=n) for _, n, c in kinds], loc="lower right", fontsize=9)
    ax.set_title(f"Peak memory: {title}", fontsize=12)
    fig.tight_layout()
    return fig


def latency_figure(plt, rows: list[dict], model: str, title: str):
    """Latency per call against batch size, log-log, one line per cell (``twinbench.results.latency.latency_rows``):
    p50 with its 95% CI as error bars. Where the line is flat, a fixed cost per call (Python, dispatch) dominates;
    where it rises with the batch, the kernels do."""
    rows = [row for row in rows if row["model"] == model]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cell in dict.fromkeys(row["label"] for row in rows):
        points = sorted((row for row in rows if row["label"] == cell), key=lambda row: row["batch_size"])
        implementation = cell.split(" ")[0]
        colour, native = STYLE.get(implementation, ("#555555", True))
        marker, size = MARKERS.get(implementation, ("o", 6))
        sizes = [row["batch_size"] for row in points]
        p50 = [1e3 * row["p50"]["value"] for row in points]
        low = [p - 1e3 * (row["p50"]["ci_low"] if row["p50"]["ci_low"] is not None else row["p50"]["value"])
               for p, row in zip(p50, points, strict=True)]
        high = [1e3 * (row["p50"]["ci_high"] if row["p50"]["ci_high"] is not None else row["p50"]["value"]) - p
                for p, row in zip(p50, points, strict=True)]
        # One colour per implementation; its call styles apart by line: call as the implementation draws (solid
        # native, dashed Keras), predict_on_batch dotted, predict dash-dotted.
        line = {"style=predict_on_batch": ":", "style=predict": "-."}.get(
            next((part for part in cell.split(" ") if part.startswith("style=")), ""), "-" if native else "--")
        ax.errorbar(sizes, p50, yerr=[low, high], color=colour, linestyle=line, marker=marker,
                    markersize=size, markerfacecolor="none", capsize=3, label=cell)
    ax.set_xscale("log", base=2)
    batch_sizes = sorted({row["batch_size"] for row in rows})
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("batch size (log scale)")
    ax.set_ylabel("latency per call (ms, p50; bars: 95% CI; log scale)")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"Inference latency against batch size: {title}\n"
                 "flat: a fixed cost per call dominates (Python, dispatch); rising: the kernels do", fontsize=9)
    fig.tight_layout()
    return fig


def draw_latency(rows: list[dict], *, out_dir: Path, machine: str = "") -> dict[str, Path]:
    """One latency figure per model of ``rows``; returns ``{name: path}`` (``latency__MODEL``)."""
    plt = _plt()
    drawn = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        figure = latency_figure(plt, rows, model, f"{model}" + (f" — {machine}" if machine else ""))
        if figure is None:
            continue
        path = Path(out_dir) / f"latency__{model}.png"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(figure)
        drawn[f"latency__{model}"] = path
    return drawn


def _family_colour(plt, family: str):
    """Every family of causes in one colour in every figure: by its place in ``twinbench.causes.FAMILIES``."""
    index = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return plt.get_cmap("tab20")(index % 20)
def generation_figure(plt, rows: list[dict], where: tuple, title: str):
    """GPT-2 generation per cell (``twinbench.results.generation.generation_rows`` of one model and sizes): tokens per
    second (median, bars: its 95% CI) on the left; per-token latency p50 (bars: its 95% CI) and the time to first
    token on the right. keras-hub's cells have no token times: their right-hand bars are absent and say so."""
    rows = [row for row in rows if (row["model"], row["sizes"]) == where]
    if not rows:
        return None
    labels = [row["label"] for row in rows]
    ys = list(range(len(rows)))[::-1]
    fig, (rate_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 0.55 * len(rows) + 2.2), sharey=True)
    for y, row in zip(ys, rows, strict=True):
        colour, native = STYLE.get(row["label"].split(" ")[0], ("#555555", True))
        hatch = None if native else "//"
        rate = row["tokens_per_s"]
        rate_ax.barh(y, rate["median"], height=0.7, color=colour, hatch=hatch, edgecolor="white",
                     xerr=[[rate["median"] - rate["ci_low"]], [rate["ci_high"] - rate["median"]]], capsize=3)
        rate_ax.text(rate["ci_high"], y, f" {rate['median']:,.1f}", va="center", fontsize=8)
        if row["p50"] is None:
            time_ax.text(0.01, y, "no token times (one compiled loop)", va="center", fontsize=8, color="#777777",
                         transform=time_ax.get_yaxis_transform())
            continue
        p50 = row["p50"]
        low = p50["ci_low"] if p50["ci_low"] is not None else p50["value"]
        high = p50["ci_high"] if p50["ci_high"] is not None else p50["value"]
        time_ax.barh(y + 0.18, 1e3 * p50["value"], height=0.34, color=colour, hatch=hatch, edgecolor="white",
                     xerr=[[1e3 * (p50["value"] - low)], [1e3 * (high - p50["value"])]], capsize=3)
        ttft = row["ttft"]
        time_ax.barh(y - 0.18, 1e3 * ttft["median"], height=0.34, color=colour, alpha=0.45, edgecolor="white",
                     xerr=[[1e3 * (ttft["median"] - ttft["ci_low"])], [1e3 * (ttft["ci_high"] - ttft["median"])]],
                     capsize=3)
    _rows(rate_ax, ys, labels)
    rate_ax.set_xlabel("tokens per second (median over calls; bars: 95% CI)")
    rate_ax.grid(axis="x", alpha=0.3)
    time_ax.set_xlabel("ms: per token p50 (solid) and first token (light); bars: 95% CI")
    time_ax.grid(axis="x", alpha=0.3)
    prompt, new, batch = where[1]
    fig.suptitle(f"GPT-2 greedy generation: {title}\nprompt {prompt} tokens, {new} new tokens, batch {batch}; "
                 "hatched: Keras 3", fontsize=10)
    fig.tight_layout()
    return fig


def draw_generation(rows: list[dict], *, out_dir: Path, machine: str = "") -> dict[str, Path]:
    """One generation figure per model and sizes of ``rows``; returns ``{name: path}``
    (``generation__MODEL__PROMPT-NEW-BATCH``)."""
    plt = _plt()
    drawn = {}
    for where in dict.fromkeys((row["model"], row["sizes"]) for row in rows):
        figure = generation_figure(plt, rows, where, where[0] + (f" — {machine}" if machine else ""))
        if figure is None:
            continue
        name = f"generation__{where[0]}__{'-'.join(map(str, where[1]))}"
        path = Path(out_dir) / f"{name}.png"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(figure)
        drawn[name] = path
    return drawn


def causes_figures(bars: dict[str, dict[str, dict[str, float]]], *, out_dir: Path,
                   native: str = "native ops (kernels, C++)") -> dict[str, Path]:
    """One stacked-bar figure per model and batch (``twinbench.results.breakdown.stacked_bars``): a bar per
    implementation, its ms per step under the Python profiler split by family of causes, and beside it the same
    without the ``native`` family (the kernels: the Python part alone); returns ``{name: path}``."""
    if not bars:
        return {}
    plt = _plt()
    drawn = {}
    for title, cells in bars.items():
        families = sorted({f for parts in cells.values() for f in parts},
                          key=lambda f: -max(parts.get(f, 0.0) for parts in cells.values()))
        colours = {family: _family_colour(plt, family) for family in families}
        labels = list(cells)
        ys = list(range(len(labels)))[::-1]
        # Left: the whole profiled step; right: its Python part alone (the native ops would hide it).
        fig, axes = plt.subplots(1, 2, figsize=(13, 0.6 * len(cells) + 2.4), sharey=True)
        for ax, shown, xlabel in ((axes[0], families, "ms per step under cProfile (self time, folded by cause)"),
                                  (axes[1], [f for f in families if f != native],
                                   f"the same without {native}: the Python part")):
            for y, label in zip(ys, labels, strict=True):
                left = 0.0
                for family in shown:
                    width = cells[label].get(family, 0.0)
                    ax.barh(y, width, left=left, color=colours[family], edgecolor="white",
                            label=family if y == ys[0] and ax is axes[0] else None)
                    left += width
            ax.set_xlabel(xlabel)
        _rows(axes[0], ys, labels)
        fig.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02 - 0.04 * len(families) / 4), ncol=4, fontsize=8,
                   frameon=False)
        fig.suptitle(f"A step's time by cause: {title}")
        fig.tight_layout()
        name = "causes__" + "".join(c if c.isalnum() else "_" for c in title)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        drawn[name] = path
    return drawn


def split_figures(rows: list[dict], *, out_dir: Path) -> dict[str, Path]:
    """One figure per model, phase and batch (``twinbench.results.breakdown.breakdown_differences``'s ``group``): a
    bar per pair of cells (numerator / denominator), its extra ms per step split by family (``split``: each family's
    change, corrected for the profiler, stacked right when it grew and left when it shrank; the unexplained rest
    hatched), and a black diamond at the measured gap with its 95% CI: where the bars end beside the diamond, the
    families account for the gap. Returns ``{name: path}``."""
    if not rows:
        return {}
    plt = _plt()
    drawn = {}
    for title in dict.fromkeys(row["group"] for row in rows):
        chosen = [row for row in rows if row["group"] == title]
        fig, ax = plt.subplots(figsize=(11, 0.7 * len(chosen) + 2.2))
        ys = list(range(len(chosen)))[::-1]
        shown = set()
        for y, row in zip(ys, chosen, strict=True):
            parts = row["split"]
            pieces = [*parts["families"], ("unexplained", parts["unexplained_ms"], [])]
            # A waterfall: the families that grew from 0 rightwards, then those that shrank back, then the rest;
            # it ends at the measured gap.
            position = 0.0
            for family, delta, _ in sorted(pieces[:-1], key=lambda piece: piece[1] < 0) + pieces[-1:]:
                style = ({"color": "white", "edgecolor": "grey", "hatch": "//"} if family == "unexplained"
                         else {"color": _family_colour(plt, family), "edgecolor": "white"})
                ax.barh(y, delta, left=position, height=0.6 if delta >= 0 else 0.35,
                        label=None if family in shown else family, **style)
                shown.add(family)
                position += delta
            ax.errorbar(parts["extra_ms"], y, xerr=parts["ci_ms"], fmt="D", color="black", capsize=4,
                        label=None if "gap" in shown else "measured gap (unprofiled, 95% CI)")
            shown.add("gap")
        ax.axvline(0.0, color="black", linewidth=0.8)
        _rows(ax, ys, [f"{row['numerator']} / {row['denominator']}" for row in chosen])
        ax.set_xlabel("extra ms per step (per call, for inference) of the numerator\nfamilies that grew (tall), "
                      "families that shrank (thin), the unexplained rest (hatched)")
        fig.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02 - 0.04 * len(shown) / 4), ncol=4, fontsize=8,
                   frameon=False)
        fig.suptitle(f"Where the extra time goes: {title}")
        fig.tight_layout()
        name = "split__" + "".join(c if c.isalnum() else "_" for c in title)
        path = Path(out_dir) / f"{name}.png"
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        drawn[name] = path
    return drawn
