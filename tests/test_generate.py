"""The generation cells (``twinbench generate``) and the compile-mode axis: their one-line errors, the record, and the
comparison (table, ratios with the verdict rules, figure) from fake records. No timing is asserted: only structure.
That every implementation's greedy tokens are Hugging Face's is ``tests/test_gpt2_generation.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import IMPLEMENTATIONS_HERE, impl_id, requires_backend
from twinbench.backends.base import COMPILE_MODES, check_compile_mode, check_compile_mode_here
from twinbench.backends.process import BackendError
from twinbench.cell import CELL_AXES, Cell, cell_argv, command_axes
from twinbench.cli import main
from twinbench.measuring.generate import GenerateConfig, call_figures, check_generation, execute_generate
from twinbench.models.choices import UnknownChoiceError
from twinbench.models.gpt2.generation import COMPILED_DECODING
from twinbench.records import write_record
from twinbench.results.generation import (
    generation_ratios,
    generation_rows,
    generation_section,
    generation_table,
)

# -- the compile-mode axis ------------------------------------------------------------------------------------------


def test_compile_mode_is_one_axis_of_latency_and_generate_for_the_pytorch_twin():
    declared = CELL_AXES["compile_mode"]
    assert declared.choices == COMPILE_MODES == ("default", "max-autotune", "reduce-overhead")
    assert declared.implementations == ("torch",) and declared.commands == ("latency", "generate")
    assert "compile_mode" in command_axes("generate") and "compile_mode" not in command_axes("throughput")
    cell = Cell("cifar_cnn", "torch", "torch", "synthetic", jit="on", compile_mode="max-autotune")
    assert cell.label == "torch jit=on compile_mode=max-autotune"
    assert cell_argv(cell, "latency")[-4:] == ["--jit", "on", "--compile-mode", "max-autotune"]
    with pytest.raises(UnknownChoiceError, match="--compile-mode applies to torch only, not to keras"):
        Cell("cifar_cnn", "keras", "torch", "synthetic", compile_mode="max-autotune").check_applies()


def test_a_compile_mode_needs_jit_on_and_reduce_overhead_a_gpu():
    check_compile_mode("max-autotune", "on")
    with pytest.raises(ValueError, match=r"needs --jit on\. Received: jit='default'\. Valid without --jit on: "
                                         r"--compile-mode default\.") as error:
        check_compile_mode("max-autotune", "default")
    assert "\n" not in str(error.value)
    check_compile_mode_here("reduce-overhead", gpu=True)
    with pytest.raises(BackendError, match=r"reduce-overhead replays CUDA graphs: a GPU only.*Valid here: default, "
                                           r"max-autotune\.") as error:
        check_compile_mode_here("reduce-overhead", gpu=False)
    assert "\n" not in str(error.value)


# -- the generation cell's errors: one line, naming the valid values -------------------------------------------------

SIZES = {"prompt_length": 8, "new_tokens": 4, "batch_size": 1}


@pytest.mark.parametrize(("changes", "message"), [
    ({"batch_size": 0}, r"--batch-size must be a positive integer .* Received: batch_size=0\."),
    ({"new_tokens": 0}, r"1 <= max_new_tokens <= 63 \(n_positions - 1\)\. Received: max_new_tokens=0\."),
    ({"prompt_length": 60, "new_tokens": 8}, r"A prompt of 1 to 56 tokens fits the 64 positions with "
                                             r"max_new_tokens=8\. Received: a prompt of 60 tokens\."),
    ({"prompt_length": 0}, r"--prompt-length must be 1 to 60 tokens\. Received: prompt_length=0\."),
], ids=["batch-zero", "no-new-tokens", "prompt-longer-than-the-context", "empty-prompt"])
def test_generation_sizes_are_checked_before_any_framework(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        check_generation("gpt_tiny", "torch", "torch", **{**SIZES, **changes})
    assert "\n" not in str(error.value)


def test_only_gpt2_generates_and_compiled_decoding_is_named_where_it_exists():
    with pytest.raises(ValueError, match=r"runs GPT-2's models: gpt2, gpt2_kerashub, gpt_tiny, gpt_tiny_kerashub\. "
                                         r"Received: model='cifar_cnn'\."):
        check_generation("cifar_cnn", "torch", "torch", **SIZES)
    for pair in COMPILED_DECODING:
        check_generation("gpt_tiny", *pair, jit="on", **SIZES)
    with pytest.raises(ValueError, match=r"keras\[torch\] has no compiled decoding here .* Valid with --jit on: "
                                         r"torch, keras\[jax\], keras\[tensorflow\], tf_keras\."):
        check_generation("gpt_tiny", "keras", "torch", jit="on", **SIZES)
    with pytest.raises(ValueError, match=r"keras-hub's generate compiles its own loop.*Valid: --jit default\."):
        check_generation("gpt_tiny_kerashub", "keras", "tensorflow", jit="on", **SIZES)
    with pytest.raises(ValueError, match="needs --jit on"):
        check_generation("gpt_tiny", "torch", "torch", compile_mode="max-autotune", **SIZES)


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch-size", "0"], "--batch-size must be a positive integer (prompts decoded together). Received: "
                            "batch_size=0."),
    (["--new-tokens", "0"], "generate takes 1 <= max_new_tokens <= 63 (n_positions - 1). Received: "
                            "max_new_tokens=0."),
    (["--prompt-length", "60", "--new-tokens", "8"], "A prompt of 1 to 56 tokens fits the 64 positions with "
                                                     "max_new_tokens=8. Received: a prompt of 60 tokens."),
], ids=["batch-zero", "no-new-tokens", "prompt-too-long"])
def test_the_cli_refuses_bad_sizes_in_one_line(argv, message, capsys, tmp_path):
    assert main(["generate", "--model", "gpt_tiny", "--impl", "torch", *argv, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"twinbench: error: {message}"


def test_the_cli_refuses_a_compile_mode_for_keras_in_one_line(capsys, tmp_path):
    assert main(["latency", "--impl", "keras", "--backend", "torch", "--jit", "on", "--style", "predict",
                 "--compile-mode", "max-autotune", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "twinbench: error: --compile-mode applies to torch only, not to keras. Received: "
        "compile_mode='max-autotune'. Valid for keras: default.")


# -- compare: table, ratios, figure from fake records ---------------------------------------------------------------


def _fake(implementation, backend, *, step, run, busy=False, model="gpt_tiny", token_times=True):
    """A generate record of 4 calls of 4 new tokens: first token at ``3 * step``, then one every ``step`` seconds."""
    cell = Cell(model, implementation, backend, "synthetic")
    config = GenerateConfig(cell, new_tokens=4, repeats=4)
    rng = np.random.default_rng(run)
    calls = []
    for index in range(4):
        times = np.cumsum([3 * step, *(step * rng.uniform(0.98, 1.02, 3))])
        calls.append({"window": index, "seconds": float(times[-1]) * 1.01,
                      "token_times_s": times.tolist() if token_times else None})
    windows = [{"window": c["window"], "calls": 1, "seconds": c["seconds"],
                "contention": {"busy": busy, "reasons": ["others"] if busy else [], "others_share": 0.6 if busy
                               else 0.0, "wait_share": 0.0, "steal_share": 0.0}} for c in calls]
    return {"schema": "twinbench.run", "schema_version": 2, "kind": "generate", "status": "ok", "cell": cell.as_dict(),
            "run_id": f"{implementation}{backend}{run}", "config": config.as_dict(),
            "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
            "memory": {"host_peak_rss_bytes": 2 ** 30},
            "timing": {"prompt_length": 8, "new_tokens": 4, "batch_size": 1, "first_call_s": 2.0, "calls": calls,
                       "windows": windows, "no_token_times": None if token_times else "one compiled loop",
                       **call_figures(config, calls)}}


def _records(*, busy=False, runs=5):
    records = []
    for run in range(runs):
        records += [_fake("torch", "torch", step=0.01, run=run),
                    _fake("keras", "torch", step=0.02, run=run, busy=busy),
                    _fake("keras", "tensorflow", step=0.05, run=run, model="gpt_tiny_kerashub", token_times=False)]
    return records


def test_the_table_has_tokens_per_second_first_token_and_per_token_percentiles():
    rows = {row["label"]: row for row in generation_rows(_records())}
    torch_row = rows["torch"]
    assert torch_row["calls"] == 20 and torch_row["runs"] == 5
    assert torch_row["ttft"]["median"] == pytest.approx(0.03)
    assert torch_row["p50"]["value"] == pytest.approx(0.01, rel=0.03)
    assert torch_row["p50"]["ci_low"] <= torch_row["p50"]["value"] <= torch_row["p50"]["ci_high"]
    assert torch_row["tokens_per_s"]["median"] == pytest.approx(4 / (0.06 * 1.01), rel=0.03)
    assert rows["keras[torch]"]["p50"]["value"] == pytest.approx(0.02, rel=0.03)
    hub = next(row for row in generation_rows(_records()) if row["model"] == "gpt_tiny_kerashub")
    assert hub["p50"] is None and hub["ttft"] is None and hub["tokens_per_s"]["n"] == 20
    table = generation_table(generation_rows(_records()))
    assert "first token (ms)" in table and "per token p50" in table and "no token times" in table


@pytest.mark.large  # the runs-first bootstrap of 5 ratios: several seconds
def test_the_ratios_follow_the_verdict_rules():
    rows = generation_ratios(_records())
    assert {(r["numerator"], r["denominator"], r["samples"].split(" ")[2]) for r in rows} == {
        ("keras[torch]", "torch", "generate"), ("keras[torch]", "torch", "token")}
    per_token = next(r for r in rows if "token" in r["samples"].split(" ")[2])
    assert per_token["ratio"] == pytest.approx(2.0, rel=0.03) and per_token["verdict_status"] == "called"
    busy = generation_ratios(_records(busy=True))
    assert all(r["verdict_status"] == "busy" and r["verdict"].startswith("machine busy") for r in busy)
    assert all(r["verdict_status"] == "unresolved" for r in generation_ratios(_records(runs=2)))


@pytest.mark.large  # the ratios' bootstrap and the figure: several seconds
def test_compare_and_report_show_the_generation_table_ratios_and_figure(tmp_path, capsys):
    for record in _records(runs=2):
        write_record(record, tmp_path)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "greedy generation, prompt 8 tokens, 4 new tokens, batch 1" in out and "keras[torch] / torch" in out
    assert "Ratios per generate call and per token" in generation_section(_records(runs=2))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Generation" in report and "figures/generation__gpt_tiny__8-4-1.png" in report
    assert (tmp_path / "figures" / "generation__gpt_tiny__8-4-1.png").stat().st_size > 10_000


# -- one record per implementation here (large: builds, decodes and compiles) ----------------------------------------


@requires_backend
@pytest.mark.large
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
@pytest.mark.parametrize("jit", ["default", "on"])
def test_the_generate_command_writes_a_record_of_every_token(pair, jit, tmp_path, capsys):
    implementation, backend = pair
    if jit == "on" and pair not in COMPILED_DECODING:
        pytest.skip(f"{implementation}[{backend}] has no compiled decoding")
    code = main(["generate", "--model", "gpt_tiny", "--impl", implementation, "--backend", backend, "--jit", jit,
                 "--prompt-length", "5", "--new-tokens", "3", "--repeats", "2", "--warmup", "1",
                 "--out", str(tmp_path)])
    assert code == 0
    assert "tokens/s; first token" in capsys.readouterr().out
    (path,) = tmp_path.glob("*__generate.json")
    record = json.loads(path.read_text())
    timing = record["timing"]
    assert record["kind"] == "generate" and record["config"]["new_tokens"] == 3
    assert [len(call["token_times_s"]) for call in timing["calls"]] == [3, 3]
    assert len(timing["per_token_s"]) == 4 and record["tokens"]["every_call_the_same"]
    assert timing["compiled_decoding"] == (COMPILED_DECODING[pair] if jit == "on" else "eager")


@requires_backend
@pytest.mark.large
def test_kerashub_generation_has_no_token_times_and_says_why():
    if ("keras", "tensorflow") not in IMPLEMENTATIONS_HERE:
        pytest.skip("keras-hub lives in the tensorflow environment")
    record = execute_generate(GenerateConfig(Cell("gpt_tiny_kerashub", "keras", "tensorflow", "synthetic"),
                                             prompt_length=5, new_tokens=3, repeats=2, warmup=1))
    timing = record["timing"]
    assert timing["per_token_percentiles_s"] is None and timing["time_to_first_token_s"] is None
    assert "one compiled call" in timing["no_token_times"] and timing["tokens_per_s"]["n"] == 2
