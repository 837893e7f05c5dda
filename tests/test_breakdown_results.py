"""The breakdown's figures from profiles and records, without a framework: the table over windows
(``twinbench.measuring.breakdown.breakdown_table``), the "of the extra X ms" line, the stacked bars and the calls
table (``twinbench.results.breakdown``)."""

from __future__ import annotations

import pytest

from twinbench.causes import NATIVE_GROUP, Function
from twinbench.measuring.breakdown import breakdown_table
from twinbench.results import figures
from twinbench.results.breakdown import (
    beside,
    breakdown_differences,
    calls_section,
    difference_line,
    split,
    stacked_bars,
)
from twinbench.stats import linear_fit, summarize


def _window(binding_s: float) -> list[Function]:
    return [Function("keras/src/layers/layer.py", "Layer.__call__", 0.001, 4, {}),
            Function("keras/src/layers/layer.py", "CallSpec.__init__", binding_s, 4, {}),
            Function("~", "<built-in method torch.relu>", 0.002, 8, {})]


def test_the_table_over_windows_takes_medians_and_the_typical_window():
    groups, counts, calls = breakdown_table([_window(0.001), _window(0.100), _window(0.002)], steps=2)
    binding = groups["argument binding"]
    assert binding["ms_per_step"]["median"] == pytest.approx(1.0)  # 2 ms over 2 steps; the 100 ms window is an outlier
    assert binding["top"][0]["ms_per_step"] == pytest.approx(1.0) and binding["family"] == "layer-call machinery"
    assert counts == {"layer calls": 2.0, "backend ops": 4.0} and calls == 8


def _record(impl: str, backend: str, *, step_ms: float, parts: dict[str, float], profiler_ms: float,
            steps_ms=None, profiled_ms=None, calls=None, **axes) -> dict:
    families = {"argument binding": "layer-call machinery", NATIVE_GROUP: NATIVE_GROUP,
                "nn.Module __call__ and hooks": "module call", "keras.ops": "op dispatch"}
    return {"kind": "breakdown", "status": "ok", "started": "2026-12-07T00:00:00+00:00", "run_id": impl,
            "cell": {"model": "cifar_cnn", "implementation": impl, "backend": backend, "dataset": "synthetic", **axes},
            "config": {"batch_size": 2}, "timing": {"step_s": summarize([ms / 1e3 for ms in steps_ms or [step_ms] * 6]),
                                                    "profiled_step_s": summarize([(profiled_ms or step_ms) / 1e3] * 6)},
            "profiler": {"estimated_ms_per_step": profiler_ms, "cost_per_call_us": summarize([0.3] * 6),
                         "profiled_calls_per_step": 100},
            "breakdown": {"counts_per_step": {"layer calls": 3, "backend ops": 9},
                          "groups": {name: {"family": families[name], "ms_per_step": summarize([ms] * 6),
                                            "calls_per_step": (calls or {}).get(name, 1),
                                            "top": [{"function": f"m.py:{name}", "ms_per_step": ms}]}
                                     for name, ms in parts.items()}}}


def test_the_extra_time_is_split_by_family_with_the_rest_unexplained(tmp_path):
    keras = _record("keras", "torch", step_ms=10.0, parts={"argument binding": 3.0, NATIVE_GROUP: 5.0},
                    profiler_ms=1.0)
    torch = _record("torch", "torch", step_ms=6.0, parts={"nn.Module __call__ and hooks": 0.5, NATIVE_GROUP: 5.0},
                    profiler_ms=0.5)
    line = difference_line(keras, torch)
    # extra 4.0; families +3.0 layer-call machinery, -0.5 module call, +0.0 native (no inflation: profiled = plain);
    # unexplained = 4.0 - 2.5 = 1.5
    assert line.startswith("of the extra +4.00 ms/step (±0.00, unprofiled): +3.00 in layer-call machinery "
                           "(argument binding)")
    assert "-0.50 in module call" in line and ("unexplained +1.50 (outside the gap's CI: not accounted for); the "
                                               "families less the profiler's measured inflation") in line
    bars = stacked_bars([keras, torch])
    assert bars == {"cifar_cnn train batch 2": {"torch": {NATIVE_GROUP: 5.0, "module call": 0.5},
                                                "keras[torch]": {NATIVE_GROUP: 5.0, "layer-call machinery": 3.0}}}
    drawn = figures.causes_figures(bars, out_dir=tmp_path)
    assert [path.name for path in drawn.values()] == ["causes__cifar_cnn_train_batch_2.png"]
    rows = breakdown_differences([keras, torch])
    assert [row["numerator"] for row in rows] == ["keras[torch]"]
    drawn = figures.split_figures(rows, out_dir=tmp_path)
    assert [path.name for path in drawn.values()] == ["split__cifar_cnn_train_batch_2.png"]
    assert all(path.stat().st_size > 0 for path in drawn.values())


def test_the_calls_table_names_fixed_and_per_element_costs():
    fit = linear_fit([(8, [10.0, 10.2, 9.8]), (8000, [90.0, 90.5, 89.5])])
    record = {"kind": "calls", "status": "ok", "started": "x", "run_id": "a", "note": None,
              "cell": {"model": "layers", "implementation": "torch", "backend": "torch", "dataset": "synthetic"},
              "rows": [{"layer": "Dense", "pass": "forward", "compiled": False, "size": "tiny",
                        "us_per_call": summarize([10.0, 10.2, 9.8])}],
              "fits": [{"layer": "Dense", "pass": "forward", "compiled": False, **fit}]}
    text = calls_section([record])
    assert "Dense" in text and "ns/element; tiny 10.0 µs" in text and " 9.9 µs [" in text


def test_the_split_stands_beside_its_decomposition_row():
    keras = _record("keras", "torch", step_ms=10.0, parts={"argument binding": 3.0}, profiler_ms=0.0)
    torch = _record("torch", "torch", step_ms=7.0, parts={"nn.Module __call__ and hooks": 0.5}, profiler_ms=0.0)
    rows = [{"model": "cifar_cnn", "batch_size": 2, "numerator": "keras[torch]", "denominator": "torch"},
            {"model": "cifar_cnn", "batch_size": 64, "numerator": "keras[torch]", "denominator": "torch"},
            {"model": "cifar_cnn", "batch_size": 2, "numerator": "keras[jax]", "denominator": "keras[torch]"}]
    lines = beside(rows, [keras, torch])
    assert len(lines) == 1 and lines[0].startswith("cifar_cnn batch 2, keras[torch] / torch: of the extra +3.00 ms")


def test_the_families_corrected_for_the_profiler_plus_the_unexplained_add_up_to_the_gap():
    keras = _record("keras", "torch", step_ms=10.0, steps_ms=[8.0, 9.0, 10.0, 10.0, 11.0, 12.0],
                    parts={"argument binding": 4.5, "keras.ops": 1.25, NATIVE_GROUP: 5.0}, profiler_ms=0.75,
                    profiled_ms=12.0, calls={"argument binding": 30, "keras.ops": 10, NATIVE_GROUP: 0})
    torch = _record("torch", "torch", step_ms=6.0, steps_ms=[5.5, 5.8, 6.0, 6.0, 6.2, 6.5],
                    parts={"nn.Module __call__ and hooks": 0.5, NATIVE_GROUP: 5.25}, profiler_ms=0.25)
    parts = split(keras, torch)
    families = {family: delta for family, delta, _ in parts["families"]}
    # keras' 2 ms of inflation (12 profiled, 10 plain) shared by calls: 1.5 to argument binding, 0.5 to keras.ops.
    assert families == pytest.approx({"layer-call machinery": 3.0, "op dispatch": 0.75, "module call": -0.5,
                                      NATIVE_GROUP: -0.25})
    assert parts["extra_ms"] == pytest.approx(4.0) and parts["profiler_ms"] == pytest.approx(2.0)
    assert sum(families.values()) + parts["unexplained_ms"] == pytest.approx(parts["extra_ms"])
    assert parts["unexplained_ms"] == pytest.approx(4.0 - 3.0)
    # The gap's CI from both step times' CIs: 1 ms left unexplained lies inside it here, not in a tight one.
    assert parts["ci_ms"] > 1.0 and parts["within_ci"]
    assert "within the gap's CI" in difference_line(keras, torch)
    tight = _record("keras", "torch", step_ms=10.0, parts={"argument binding": 2.5, "keras.ops": 1.25,
                                                            NATIVE_GROUP: 5.0}, profiler_ms=0.75)
    assert not split(tight, _record("torch", "torch", step_ms=6.0, parts={NATIVE_GROUP: 5.25},
                                    profiler_ms=0.25))["within_ci"]


def test_inference_breakdowns_pair_with_inference_ones_and_a_what_if_says_what_it_closes():
    torch = _record("torch", "torch", step_ms=2.0, parts={NATIVE_GROUP: 1.0}, profiler_ms=0.0, phase="infer")
    keras = _record("keras", "torch", step_ms=6.0, parts={"argument binding": 2.0, NATIVE_GROUP: 1.0},
                    profiler_ms=0.0, phase="infer")
    patched = _record("keras", "torch", step_ms=5.0, parts={"argument binding": 1.0, NATIVE_GROUP: 1.0},
                      profiler_ms=0.0, phase="infer", what_if="fast-bind")
    trained = _record("torch", "torch", step_ms=9.0, parts={NATIVE_GROUP: 9.0}, profiler_ms=0.0)
    rows = breakdown_differences([torch, keras, patched, trained])
    assert [(row["group"], row["numerator"], row["denominator"]) for row in rows] == [
        ("cifar_cnn infer batch 2", "keras[torch] phase=infer", "torch phase=infer"),
        ("cifar_cnn infer batch 2", "keras[torch] phase=infer what_if=fast-bind", "keras[torch] phase=infer")]
    assert rows[1]["line"].startswith("saves +1.00 ms/call (±0.00); closes 1.00 of the 4.00 ms/call gap to "
                                      "torch phase=infer (25%)")
    assert rows[1]["split"]["families"][0][:2] == ("layer-call machinery", -1.0)
    # No training breakdown of keras[torch]: the training row stands without a split.
    assert beside([{"model": "cifar_cnn", "batch_size": 2, "numerator": "keras[torch]", "denominator": "torch"}],
                  [torch, keras, patched, trained]) == []


def test_eager_and_compiled_breakdowns_of_one_implementation_pair_up():
    eager = _record("keras", "jax", step_ms=8.0, parts={"keras.ops": 4.0}, profiler_ms=0.0, jit="off")
    compiled = _record("keras", "jax", step_ms=3.0, parts={"keras.ops": 0.5}, profiler_ms=0.0)
    (row,) = breakdown_differences([eager, compiled])
    assert (row["numerator"], row["denominator"], row["meaning"]) == ("keras[jax] jit=off", "keras[jax]",
                                                                      "compile effect: eager / compiled")
    assert row["line"].startswith("of the extra +5.00 ms/step") and "+3.50 in op dispatch" in row["line"]
