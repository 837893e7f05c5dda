"""tools/crosscheck/crosscheck.py: the plain-loop cross-check. Its compare logic on fabricated results and records (agreement,
disagreement, missing cells, CPU layouts kept apart), and one real tiny run per implementation of this environment
that produces both lists of samples."""

from __future__ import annotations

import inspect
import json
import statistics
import sys

import numpy as np
import pytest

from conftest import IMPLEMENTATIONS_HERE, ROOT, impl_id, requires_backend
from twinbench.records import SCHEMA, SCHEMA_VERSION
from twinbench.results import decompose
from twinbench.stats import summarize

sys.path.insert(0, str(ROOT / "tools" / "crosscheck"))
import crosscheck  # noqa: E402

# Seconds per step of each cell: step-only / compute-only and whole; the ratios between cells are what is compared.
COMPUTE = {("torch", "torch"): 0.010, ("keras", "torch"): 0.015, ("tf_keras", "tensorflow"): 0.012,
           ("keras", "tensorflow"): 0.013, ("keras", "jax"): 0.011}
WHOLE = {cell: 1.3 * seconds for cell, seconds in COMPUTE.items()}
WHOLE[("keras", "torch")] = 0.024  # keras[torch] feeds slower


def samples(seconds, *, seed):
    return list(seconds * (1 + 0.002 * np.random.default_rng(seed).standard_normal(6)))


def hand_result(cell, *, cpus=None, scale=1.0, step_scale=1.0, allocator=None):
    implementation, backend = cell
    return {"tool": "crosscheck", "model": "cifar_cnn", "implementation": implementation, "backend": backend,
            "loop": "loop" if implementation == "torch" else "fit", "batch_size": 64, "steps": 20, "cpus": cpus,
            **({"allocator": allocator} if allocator else {}),
            "step_only_s": samples(COMPUTE[cell] * scale * step_scale, seed=1),
            "whole_loop_s": samples(WHOLE[cell] * scale, seed=2)}


def bench_record(cell, *, cpus=None, scale=1.0, feed="arrays", allocator=None):
    """A twinbench throughput record with whole windows (profiler on, as today) and compute windows; fed plain arrays
    (``--feed arrays``, what the plain loop is compared with) unless ``feed`` says otherwise."""
    implementation, backend = cell
    repeats = [{"repeat": i, "profiler": True, "window": "whole", "step_s": s}
               for i, s in enumerate(samples(WHOLE[cell] * scale, seed=3))]
    repeats += [{"repeat": 10 + i, "profiler": True, "window": "compute", "step_s": s}
                for i, s in enumerate(samples(COMPUTE[cell] * scale, seed=4))]
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
            "cell": {"model": "cifar_cnn", "implementation": implementation, "backend": backend,
                     "dataset": "synthetic", **({"cpus": cpus} if cpus else {}),
                     **({"feed": feed} if feed != "native" else {}),
                     **({"allocator": allocator} if allocator else {})},
            "config": {"batch_size": 64}, "model": {"input_shape": [32, 32, 3], "params": 1},
            "timing": {"repeats": repeats}, "settings": {"jit_compile": False}}


@pytest.fixture(autouse=True)
def decomposition_by_part(monkeypatch):
    """Until ``decomposition(records, part=...)`` exists (issue 19, part 1), the same on the records' windows."""
    original = decompose.decomposition
    if "part" in inspect.signature(original).parameters:
        return

    def by_part(records, *, part="whole", seed=0):
        def window(record):
            repeats = [{**r, "profiler": True} for r in record["timing"]["repeats"]
                       if r.get("window", "whole") == part and (part == "compute" or r["profiler"])]
            return {**record, "timing": {**record["timing"], "repeats": repeats}}
        return original([window(r) for r in records], seed=seed)

    monkeypatch.setattr(decompose, "decomposition", by_part)


def write(directory, results):
    directory.mkdir(parents=True, exist_ok=True)
    for index, result in enumerate(results):
        (directory / f"{index}.json").write_text(json.dumps(result))


def test_the_six_ratios_agree_both_ways_and_a_slower_step_disagrees(tmp_path, capsys):
    write(tmp_path / "bench", [bench_record(cell) for cell in COMPUTE])
    write(tmp_path / "hand", [hand_result(cell, scale=0.9) for cell in COMPUTE])  # ratios, not times, must agree
    assert crosscheck.main(["--compare", str(tmp_path / "hand"), str(tmp_path / "bench")]) == 0
    rows = crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"),
                                     [bench_record(cell) for cell in COMPUTE])
    assert sorted({row["timing"] for row in rows}) == ["step-only", "whole-loop"]
    assert len(rows) == 2 * len(decompose.DECOMPOSITION)
    whole = {(r["numerator"], r["denominator"]): r for r in rows if r["timing"] == "whole-loop"}
    assert whole[("keras[torch]", "torch")]["hand"]["ratio"] == pytest.approx(2.4 / 1.3, rel=0.01)
    assert "Plain step-only vs twinbench compute (--feed arrays):" in capsys.readouterr().out

    # keras[torch]'s step alone 10% slower: the three step-only ratios with keras[torch] disagree, nothing else.
    write(tmp_path / "hand", [hand_result(cell, step_scale=1.1 if cell == ("keras", "torch") else 1.0)
                              for cell in COMPUTE])
    rows = crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"),
                                     [bench_record(cell) for cell in COMPUTE])
    off = {(r["timing"], r["numerator"], r["denominator"]) for r in rows if not r["agree"]}
    assert off == {("step-only", "keras[torch]", "torch"), ("step-only", "keras[tensorflow]", "keras[torch]"),
                   ("step-only", "keras[jax]", "keras[torch]")}
    assert crosscheck.main(["--compare", str(tmp_path / "hand"), str(tmp_path / "bench")]) == 1
    assert crosscheck.main(["--compare", str(tmp_path / "hand"), str(tmp_path / "bench"), "--tolerance", "0.2"]) == 0


def test_layouts_are_compared_apart_and_missing_cells_are_skipped(tmp_path):
    # Pinned, everything but keras[torch] runs twice as slow: free ratios would not match pinned ones.
    pinned_scale = {cell: 1.0 if cell == ("keras", "torch") else 2.0 for cell in COMPUTE}
    records = [bench_record(cell) for cell in COMPUTE if cell != ("keras", "jax")]  # no keras[jax] free
    records += [bench_record(cell, cpus="0", scale=pinned_scale[cell]) for cell in COMPUTE]
    write(tmp_path / "hand", [hand_result(cell) for cell in COMPUTE]
          + [hand_result(cell, cpus=[0], scale=pinned_scale[cell]) for cell in COMPUTE
             if cell != ("tf_keras", "tensorflow")])  # no tf_keras pinned
    rows = crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"), records)
    assert all(row["agree"] for row in rows)
    ratios = {layout: {(r["numerator"], r["denominator"]) for r in rows if r["layout"] == layout}
              for layout in ("free", "cpus=0")}
    assert ratios["free"] == {("keras[torch]", "torch"), ("keras[tensorflow]", "tf_keras"),
                              ("keras[tensorflow]", "keras[torch]"), ("torch", "tf_keras")}
    assert ratios["cpus=0"] == {("keras[torch]", "torch"), ("keras[tensorflow]", "keras[torch]"),
                                ("keras[jax]", "keras[torch]"), ("keras[jax]", "keras[tensorflow]")}
    pinned = {(r["timing"], r["numerator"], r["denominator"]): r for r in rows if r["layout"] == "cpus=0"}
    assert pinned[("whole-loop", "keras[torch]", "torch")]["hand"]["ratio"] == pytest.approx(2.4 / 2.6, rel=0.01)
    # Nothing in common: nothing compared, and that is no agreement.
    text, agree = crosscheck.compare(tmp_path / "hand", tmp_path / "nothing")
    assert not agree and "nothing to compare" in text


def test_only_records_of_one_feed_are_compared(tmp_path):
    # twinbench's native-feed TensorFlow steps run twice as long (docs/overhead.md): they must not meet the plain loop
    # unless asked for, and then they disagree.
    slow = {cell: 2.0 if cell[1] == "tensorflow" else 1.0 for cell in COMPUTE}
    write(tmp_path / "bench", [bench_record(cell) for cell in COMPUTE]
          + [bench_record(cell, feed="native", scale=slow[cell]) for cell in COMPUTE])
    write(tmp_path / "hand", [hand_result(cell) for cell in COMPUTE])
    assert crosscheck.main(["--compare", str(tmp_path / "hand"), str(tmp_path / "bench")]) == 0
    text, agree = crosscheck.compare(tmp_path / "hand", tmp_path / "bench", feed="native")
    assert not agree and "--feed native" in text
    rows = crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"),
                                     [bench_record(cell, feed="native", scale=slow[cell]) for cell in COMPUTE],
                                     feed="native")
    off = {(r["numerator"], r["denominator"]) for r in rows if not r["agree"]}
    assert off == {("keras[tensorflow]", "keras[torch]"), ("keras[jax]", "keras[tensorflow]"), ("torch", "tf_keras")}
    assert crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"),
                                     [bench_record(cell, feed="native") for cell in COMPUTE]) == []


def test_only_results_and_records_of_one_allocator_are_compared(tmp_path):
    # The tuned allocator's steps are faster in torch only here: mixing settings would make torch's ratios disagree.
    fast = {cell: 0.8 if cell[1] == "torch" else 1.0 for cell in COMPUTE}
    write(tmp_path / "bench", [bench_record(cell) for cell in COMPUTE]
          + [bench_record(cell, allocator="tuned", scale=fast[cell]) for cell in COMPUTE])
    write(tmp_path / "hand", [hand_result(cell) for cell in COMPUTE]
          + [hand_result(cell, allocator="tuned", scale=fast[cell]) for cell in COMPUTE])
    for allocator in ("system", "tuned"):
        text, agree = crosscheck.compare(tmp_path / "hand", tmp_path / "bench", allocator=allocator)
        assert agree and f"--allocator {allocator}" in text
        # Pooling the other setting's samples would have left the torch ratios off by 20%.
        assert crosscheck.load_hand(tmp_path / "hand", allocator)[("free", "cifar_cnn", 64, ("torch", "torch"))][
            "runs"] == 1
    tuned_hand = crosscheck.load_hand(tmp_path / "hand", "tuned")
    rows = crosscheck.agreement_rows(tuned_hand, [bench_record(cell) for cell in COMPUTE], allocator="system")
    assert rows == []  # a tuned plain loop never meets the system allocator's records
    # Compared across settings, the tuned records' numbers against the system plain loop (the setting dropped from
    # the records), every ratio with one PyTorch-backend cell would be off.
    unnamed = [bench_record(cell, scale=fast[cell]) for cell in COMPUTE]
    mixed = crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"), unnamed)
    assert {(r["numerator"], r["denominator"]) for r in mixed if not r["agree"]} == {
        ("keras[tensorflow]", "keras[torch]"), ("keras[jax]", "keras[torch]"), ("torch", "tf_keras")}


def test_results_from_before_step_only_compare_whole_loop_only(tmp_path):
    old = [{**hand_result(cell), "step_s": hand_result(cell)["whole_loop_s"]} for cell in COMPUTE]
    for result in old:
        del result["step_only_s"], result["whole_loop_s"], result["cpus"]
    write(tmp_path / "hand", old)
    rows = crosscheck.agreement_rows(crosscheck.load_hand(tmp_path / "hand"), [bench_record(c) for c in COMPUTE])
    assert {row["timing"] for row in rows} == {"whole-loop"} and len(rows) == len(decompose.DECOMPOSITION)


def test_cpu_lists():
    assert crosscheck.parse_cpus("0") == [0]
    assert crosscheck.parse_cpus("0,2-3") == [0, 2, 3]
    assert crosscheck.layout_name("1,0") == crosscheck.layout_name([0, 1]) == "cpus=0,1"  # a record's, a result's
    assert crosscheck.layout_name("free") == crosscheck.layout_name(None) == "free"
    with pytest.raises(SystemExit, match="expected CPU numbers"):
        crosscheck.parse_cpus("first")
    with pytest.raises(SystemExit, match="this process may use CPUs"):
        crosscheck.pin([4096])  # refused before anything is pinned


@requires_backend
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_a_tiny_plain_loop_times_both_ways(pair, tmp_path):
    implementation, backend = pair
    assert crosscheck.main(["--impl", implementation, "--model", "mnist_cnn", "--input-shape", "28x28x1",
                            "--batch-size", "8", "--steps", "2", "--repeats", "2", "--warmup", "1", "--batches", "2",
                            "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert (result["implementation"], result["backend"], result["layout"]) == (implementation, backend, "free")
    assert len(result["step_only_s"]) == len(result["whole_loop_s"]) == 2
    # The steps lie inside their windows: a window's step-only time is a part of its whole-loop time.
    for step_only, whole in zip(result["step_only_s"], result["whole_loop_s"], strict=True):
        assert 0 < step_only <= whole


@requires_backend
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_a_tiny_paired_run_times_the_plain_loop_beside_twinbench(pair, tmp_path):
    implementation, backend = pair
    assert crosscheck.main(["--impl", implementation, "--paired", "--model", "mnist_cnn", "--input-shape", "28x28x1",
                            "--batch-size", "8", "--steps", "2", "--repeats", "2", "--batches", "2",
                            "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*__paired__free.json")
    result = json.loads(path.read_text())
    assert (result["tool"], result["implementation"], result["backend"]) == ("crosscheck-paired", implementation,
                                                                             backend)
    for key in ("plain_step_only_s", "plain_whole_loop_s", "twinbench_whole_s", "twinbench_compute_s"):
        assert len(result[key]) == 2 and all(seconds > 0 for seconds in result[key])
    for step_only, whole in zip(result["plain_step_only_s"], result["plain_whole_loop_s"], strict=True):
        assert step_only <= whole
    assert result["ratios"]["compute_vs_step_only"]["median"] == pytest.approx(statistics.median(
        b / p for b, p in zip(result["twinbench_compute_s"], result["plain_step_only_s"], strict=True)))


def test_paired_results_are_shown_and_decide_agreement(tmp_path):
    def paired(implementation, backend, factor):
        plain = samples(0.01, seed=1)
        return {"tool": "crosscheck-paired", "model": "cifar_cnn", "implementation": implementation,
                "backend": backend, "batch_size": 64, "rounds": 6, "layout": "free",
                "plain_step_only_s": plain, "plain_whole_loop_s": plain,
                "twinbench_whole_s": [factor * p for p in plain], "twinbench_compute_s": [factor * p for p in plain],
                "ratios": {"compute_vs_step_only": summarize([factor] * 6), "whole_vs_whole_loop": summarize([factor] * 6)}}

    write(tmp_path / "hand", [paired("torch", "torch", 1.01), paired("keras", "torch", 1.02)])
    text, agree = crosscheck.compare(tmp_path / "hand", tmp_path / "nothing")
    assert agree and "In one process, window by window (--paired)" in text
    assert "keras[torch]       compute/step-only 1.020" in text
    write(tmp_path / "hand", [paired("torch", "torch", 1.01), paired("keras", "torch", 1.10)])
    text, agree = crosscheck.compare(tmp_path / "hand", tmp_path / "nothing")
    assert not agree and text.count(" NO") == 1


def test_under_the_same_alternation_each_implementation_pairs_its_processes_by_round(tmp_path, capsys):
    """twinbench study run crosscheck-alternated: round N of both sides under round-N. A drift that slows every
    round's two processes alike cancels in the pairs; an implementation whose twinbench step is 10% slower than its
    plain loop's is caught."""
    from twinbench.records import write_record

    slower = ("keras", "jax")
    for round_number, drift in enumerate([1.0, 1.3, 0.8, 1.5], 1):
        results, bench = [], tmp_path / "bench" / f"round-{round_number}"
        for cell in (("torch", "torch"), slower):
            results.append(hand_result(cell, scale=drift, allocator="tuned"))
            record = bench_record(cell, scale=drift * (1.1 if cell == slower else 1.0), allocator="tuned")
            record.update(run_id=f"{round_number}-{cell[0]}", started="2026-01-01T00:00:00",
                          finished="2026-01-01T00:00:10")
            write_record(record, bench)
        write(tmp_path / "crosscheck" / f"round-{round_number}", results)
    pairs = crosscheck.alternated_pairs(tmp_path / "crosscheck", tmp_path / "bench", allocator="tuned")
    assert {key[3] for key in pairs} == {("torch", "torch"), slower} and all(len(p) == 4 for p in pairs.values())
    rows = {row["cell"]: row for row in crosscheck.alternated_rows(pairs, n_boot=200)}
    torch, jax = rows[("torch", "torch")], rows[slower]
    # Whole windows (1.3x compute) against whole-loop samples of the same seconds: agreement 1 despite the drift.
    assert torch["ratio"] == pytest.approx(1.0, abs=0.01) and torch["within"] and torch["ci_within"]
    assert jax["ratio"] == pytest.approx(1.1, abs=0.01) and not jax["within"]
    out = crosscheck.alternated_text(list(rows.values()), allocator="tuned")
    assert "keras[jax]" in out and "NO" in out and "paired by round" in out
    # Another allocator's results and records: nothing to pair.
    assert crosscheck.alternated_pairs(tmp_path / "crosscheck", tmp_path / "bench") == {}
