"""The definition effect: how much of "Keras vs PyTorch" is keras.applications defining another network.

Popular comparisons time ``keras.applications.ResNet50`` against ``torchvision.models.resnet50`` and call
the difference a framework effect. twinbench separates two ratios (time per training step, a ratio above
1 means the first is slower):

- **definition effect** = stock ``keras.applications`` model / the Keras definition matched to torchvision,
  both run by Keras 3 on the *same* backend: only the definition differs;
- **framework effect** = matched Keras definition / its native twin on the same framework (keras[torch] /
  torchvision, keras[tensorflow] / tf.keras): the same network, only the framework layer differs.

The stock and matched definitions do not cost the same arithmetic (ResNet50 v1 strides its 1x1 convolution,
VGG19 without adaptive pooling has a 49x smaller first Dense layer at 32x32), so the table also gives the
FLOP ratio and each cell's achieved GFLOP/s (``twinbench.measuring.mfu``): a definition may be faster because it computes
less, or because it runs better.

Measurement: each cell is one ``python -m twinbench throughput`` process (``twinbench.measuring.throughput``: warm-up and first
step reported apart, repeats of synchronised windows); samples are seconds per step of each repeat, ratios
are ``twinbench.stats.ratio_ci`` (ratio of medians, bootstrap 95% CI; a difference is called only when the CI
excludes 1). This module imports no framework.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from twinbench.backends.environments import BACKENDS, ENVIRONMENTS, NATIVE_BACKEND
from twinbench.cell import Cell
from twinbench.measuring import children
from twinbench.models import get_model_spec
from twinbench.records import load_records
from twinbench.results.decompose import label, pooled, pooled_samples, run_labels
from twinbench.results.table import format_table
from twinbench.stats import ratio_ci

# The matched definitions and their stock variants: keras.applications for the CNNs (the default families), keras-hub
# for the Transformers (``--families vit_tiny,gpt_tiny``; keras-hub is installed in the tensorflow environment only, so
# their stock cells run there alone).
FAMILIES = ("resnet50", "vgg19", "mobilenet_v2")
TRANSFORMER_FAMILIES = ("vit_tiny", "gpt_tiny", "vit_b_16", "gpt2")
STOCK = {**{family: f"{family}_kerasapps" for family in FAMILIES},
         **{family: f"{family}_kerashub" for family in TRANSFORMER_FAMILIES}}

# What each environment runs: (model role, implementation, backend); role "matched" or "stock". The matched
# definition runs in every cell of the environment (twinbench.backends.environments.ENVIRONMENTS), the stock one on Keras 3 only.
ENV_CELLS = {env: [*(("matched", *pair) for pair in pairs), ("stock", "keras", env)]
             for env, pairs in ENVIRONMENTS.items()}
# The native twin of each backend that has one: (implementation, backend).
NATIVE = {backend: (implementation, backend) for implementation, backend in NATIVE_BACKEND.items()}


def env_cells(env: str, family: str) -> list[tuple[str, str, str]]:
    """``ENV_CELLS[env]`` for ``family``, without a stock cell its variant cannot build in ``env`` (keras-hub's)."""
    return [(role, implementation, backend) for role, implementation, backend in ENV_CELLS[env]
            if role == "matched" or get_model_spec(STOCK[family]).builds_in(env)]


def run_cells(env: str, *, families=FAMILIES, out_dir, bench_args=(), python=sys.executable) -> int:
    """Run this environment's cells for each family, each in its own throughput process; returns failures."""
    cells = [Cell(family if role == "matched" else STOCK[family], implementation, backend, "synthetic")
             for family in families for role, implementation, backend in env_cells(env, family)]
    return children.run_cells("throughput", cells, out_dir=out_dir, child_args=bench_args, python=python)


def _cells_by_model(records):
    """``{(model, batch_size, input_shape): {(impl, backend): [records]}}`` of throughput records (default mode)."""
    out = {}
    for (kind, model, _, batch_size, shape, axes), cells in pooled(records).items():
        if kind == "throughput" and not axes:
            out[(model, batch_size, shape)] = cells
    return out


def _median_ms(samples):
    return 1e3 * statistics.median(samples)


def definition_effect_rows(records: list[dict], *, seed: int = 0) -> list[dict]:
    """One row per (family, batch size, input shape, backend) with the definition and framework effects."""
    by_model = _cells_by_model(records)
    rows = []
    for (model, batch_size, shape), matched_cells in sorted(by_model.items(), key=lambda i: tuple(map(str, i[0]))):
        if model not in STOCK:
            continue
        stock_cells = by_model.get((STOCK[model], batch_size, shape), {})
        for backend in BACKENDS:
            row = {"family": model, "batch_size": batch_size, "input_shape": list(shape), "backend": backend}
            matched_runs = matched_cells.get(("keras", backend), [])
            stock_runs = stock_cells.get(("keras", backend), [])
            native_cell = NATIVE.get(backend)
            native_runs = matched_cells.get(native_cell, []) if native_cell else []
            matched, stock, native = (pooled_samples(runs)[0] for runs in (matched_runs, stock_runs, native_runs))
            if not matched:
                continue
            row["matched_ms"] = _median_ms(matched)
            row["matched_efficiency"] = _efficiency(matched_cells.get(("keras", backend)))
            if len(stock) >= 2 and len(matched) >= 2:
                row["stock_ms"] = _median_ms(stock)
                row["stock_efficiency"] = _efficiency(stock_cells.get(("keras", backend)))
                row["definition_effect"] = ratio_ci(stock, matched, seed=seed, runs_a=run_labels(stock_runs),
                                                    runs_b=run_labels(matched_runs))
            if len(native) >= 2 and len(matched) >= 2:
                row["native"] = label(native_cell)
                row["native_ms"] = _median_ms(native)
                row["framework_effect"] = ratio_ci(matched, native, seed=seed, runs_a=run_labels(matched_runs),
                                                   runs_b=run_labels(native_runs))
            rows.append(row)
    return rows


def _efficiency(runs):
    """FLOPs per image and achieved GFLOP/s (median over runs' medians) of a cell, from its records; ``None`` where the
    records could not count FLOPs (keras-hub's composite layers: ``models/flops.py``)."""
    if not runs or "forward_flops_per_image" not in (runs[0].get("efficiency") or {}):
        return None
    eff = runs[0]["efficiency"]
    gflops = [r["efficiency"]["achieved_gflops"]["median"] for r in runs
              if (r.get("efficiency") or {}).get("achieved_gflops")]
    mfu = [r["efficiency"]["mfu"]["median"] for r in runs if (r.get("efficiency") or {}).get("mfu")]
    return {"forward_flops": eff["forward_flops_per_image"], "gflops": statistics.median(gflops) if gflops else None,
            "mfu": statistics.median(mfu) if mfu else None}


def _ratio_text(ci):
    return f"{ci['ratio']:.2f} [{ci['ci_low']:.2f}, {ci['ci_high']:.2f}]{' *' if ci['differs'] else ''}"


def definition_effect_table(records: list[dict], *, markdown: bool = False) -> str:
    """The table (plain text, or Markdown with ``markdown=True``); ``*`` marks a CI that excludes 1."""
    headers = ["model", "input", "batch", "backend", "stock keras.apps (ms/step)", "matched (ms/step)",
               "definition effect: stock/matched [95% CI]", "FLOPs stock/matched", "GFLOP/s stock | matched",
               "native twin (ms/step)", "framework effect: matched/native [95% CI]"]
    lines = []
    for row in definition_effect_rows(records):
        stock_eff, matched_eff = row.get("stock_efficiency"), row.get("matched_efficiency")
        flop_ratio = (f"{stock_eff['forward_flops'] / matched_eff['forward_flops']:.2f}"
                      if stock_eff and matched_eff else "—")
        gflops = " | ".join("—" if not e or e["gflops"] is None else f"{e['gflops']:.1f}"
                            for e in (stock_eff, matched_eff))
        lines.append([row["family"], "x".join(map(str, row["input_shape"])), str(row["batch_size"]),
                      row["backend"], f"{row['stock_ms']:.1f}" if "stock_ms" in row else "—",
                      f"{row['matched_ms']:.1f}",
                      _ratio_text(row["definition_effect"]) if "definition_effect" in row else "—", flop_ratio,
                      gflops, f"{row['native']} {row['native_ms']:.1f}" if "native" in row else "—",
                      _ratio_text(row["framework_effect"]) if "framework_effect" in row else "—"])
    if not lines:
        return "(no definition-effect rows: the directory needs throughput records of a family and its stock variant)"
    if markdown:
        return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                         + ["| " + " | ".join(cells) + " |" for cells in lines])
    return format_table(lines, headers)


def load_throughput_records(directories) -> list[dict]:
    """Throughput records in each directory and its subdirectories (e.g. one per round), to be pooled."""
    for directory in directories:
        if not Path(directory).is_dir():
            raise FileNotFoundError(f"results directory {str(directory)!r} does not exist")
    return [r for r in load_records(*directories)[0] if r.get("kind") == "throughput"]

