"""``python -m twinbench generate``: GPT-2 greedy decoding of one cell, timed token by token.

One process (one Keras backend per process) builds the cell's GPT-2 (``gpt_tiny``, ``gpt2`` or a keras-hub variant)
with the canonical weights, draws a batch of random prompts of ``prompt_length`` tokens (from ``seed``) and decodes
``new_tokens`` tokens after each, greedily, with a key/value cache, the way the implementation's users do
(``twinbench.models.gpt2.generation``: Hugging Face's ``generate`` for the PyTorch twin, the Keras definition's
cached decoder on every backend, its tf.keras translation, keras-hub's own ``generate``):

1. ``warmup`` generate calls, the first on its own (``first_call_s``: it traces and compiles where the cell compiles:
   ``--jit on``, keras-hub's loop), never averaged into the steady state;
2. ``repeats`` timed calls, each a window with the kernel's contention counts at its edges
   (``twinbench.measuring.contention``), so the verdict rules (``twinbench.results.verdict``) can tell a busy one.
   Each token is timed as it reaches the host (``generate_tokens``): the **time to first token** (the prompt's
   forward pass, the prefill, and the first choice), the **per-token latency** (seconds between consecutive tokens:
   one decode step each) and **tokens per second** (``batch x new_tokens`` over the whole call).

keras-hub's ``generate`` runs its loop in one compiled call and hands over every token at once: its records have
the call's seconds and tokens per second, and no time to first token or per-token latency (``None``, and why).

The record (kind ``generate``) holds every call's token times, the percentiles p50/p90/p99 of the pooled per-token
latencies with distribution-free CIs (``twinbench.stats.quantile_ci``), summaries of the time to first token and
tokens per second over calls, and the peak host memory (``getrusage``). This module imports no framework itself: it
goes through ``twinbench.backends.get_runner`` and the generate functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from twinbench.backends.base import check_compile_mode, check_compile_mode_here
from twinbench.backends.environments import implementation_label
from twinbench.cell import CellConfig
from twinbench.data.text import FIRST_BYTE_TOKEN
from twinbench.measuring import contention
from twinbench.measuring.latency import process_fields
from twinbench.measuring.threads import ThreadCensus
from twinbench.measuring.throughput import prepare_synthetic
from twinbench.measuring.timing import host_load, summarize_or_none
from twinbench.models import get_model_spec, list_models
from twinbench.models.gpt2.config import GPT2_SIZES
from twinbench.models.gpt2.generation import (
    COMPILED_DECODING,
    NO_COMPILED_DECODING,
    check_prompt,
    generate_function,
    generate_tokens,
)
from twinbench.records import new_record
from twinbench.records import now_iso as _now_iso  # a module name of its own: tests pin the clock here
from twinbench.stats import quantile_ci

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
KERASHUB_SUFFIX = "_kerashub"
# keras-hub's loop hands over every token at the end: what its records say instead of the per-token figures.
NO_TOKEN_TIMES = "keras-hub's generate runs its whole loop in one compiled call and returns every token at its end"


def generation_models() -> list[str]:
    """The registered models that generate: GPT-2's (``gpt_tiny``, ``gpt2``) and their keras-hub variants."""
    return [name for name in list_models() if name.removesuffix(KERASHUB_SUFFIX) in GPT2_SIZES]


def is_kerashub(model: str) -> bool:
    return model.endswith(KERASHUB_SUFFIX)


def check_generation(model: str, implementation: str, backend: str, *, prompt_length: int, new_tokens: int,
                     batch_size: int, jit: str = "default", compile_mode: str = "default") -> None:
    """Raise ``ValueError`` (one line, naming the valid values) before any framework starts, where a generate cell
    cannot run: a model that does not generate, a batch of 0, no new tokens, a prompt and its new tokens longer than
    the context, compiled decoding where the cell has none, a compile mode without ``--jit on``."""
    models = generation_models()
    if model not in models:
        raise ValueError(f"twinbench generate runs GPT-2's models: {', '.join(models)}. Received: model={model!r}.")
    sizes = GPT2_SIZES[model.removesuffix(KERASHUB_SUFFIX)]
    if batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer (prompts decoded together). Received: "
                         f"batch_size={batch_size}.")
    if prompt_length < 1:
        raise ValueError(f"--prompt-length must be 1 to {sizes.n_positions - max(new_tokens, 1)} tokens. Received: "
                         f"prompt_length={prompt_length}.")
    check_prompt(np.full((batch_size, prompt_length), FIRST_BYTE_TOKEN), max_new_tokens=new_tokens,
                 n_positions=sizes.n_positions, vocab_size=sizes.vocab_size)
    check_compile_mode(compile_mode, jit)
    if jit == "on" and is_kerashub(model):
        raise ValueError(f"keras-hub's generate compiles its own loop: --jit does not apply to {model}. Valid: "
                         "--jit default.")
    if jit == "on" and (implementation, backend) not in COMPILED_DECODING:
        why = NO_COMPILED_DECODING.get((implementation, backend), "no compiled decoder")
        valid = ", ".join(implementation_label(*pair) for pair in COMPILED_DECODING)
        raise ValueError(f"--jit on: {implementation_label(implementation, backend)} has no compiled decoding here "
                         f"({why}). Valid with --jit on: {valid}.")


@dataclass(frozen=True)
class GenerateConfig(CellConfig):
    """Everything that defines one generate run: the cell (its axes included: ``jit``, ``compile_mode``, ``cpus``,
    ``allocator``) and the sizes; recorded verbatim (``CellConfig.as_dict``)."""

    command = "generate"
    dataset = "synthetic"

    prompt_length: int = 8  # tokens of each prompt
    new_tokens: int = 32  # tokens generated after each prompt
    batch_size: int = 1  # prompts decoded together
    repeats: int = 5  # timed generate calls
    warmup: int = 2  # untimed calls before them, the first (tracing, compiling) included
    seed: int = 0
    threads: int | None = None  # CPU threads per framework pool (twinbench.backends.limit_threads); None: defaults


def prompt_batch(config: GenerateConfig, vocab_size: int) -> np.ndarray:
    """``(batch_size, prompt_length)`` random token ids (byte tokens and above), the same for every implementation."""
    rng = np.random.default_rng(config.seed)
    return rng.integers(FIRST_BYTE_TOKEN, vocab_size, (config.batch_size, config.prompt_length)).astype(np.int64)


def call_figures(config: GenerateConfig, calls: list[dict]) -> dict:
    """The timed calls summarized: time to first token and tokens per second over calls, and the percentiles of the
    pooled per-token latencies with their CIs (``None`` where the calls have no token times)."""
    tokens = config.batch_size * config.new_tokens
    per_token = [gap for call in calls if call["token_times_s"] for gap in np.diff(call["token_times_s"]).tolist()]
    ttft = [call["token_times_s"][0] for call in calls if call["token_times_s"]]
    return {
        "time_to_first_token_s": summarize_or_none(ttft) if ttft else None,
        "tokens_per_s": summarize_or_none(tokens / call["seconds"] for call in calls),
        "call_s": summarize_or_none(call["seconds"] for call in calls),
        "per_token_s": per_token,
        "per_token_percentiles_s": ({name: quantile_ci(per_token, q) for name, q in PERCENTILES.items()}
                                    if per_token else None),
    }


def execute_generate(config: GenerateConfig) -> dict:
    """Run the benchmark and return its record (status ``ok``); exceptions propagate to the caller."""
    cell = config.cell
    if config.warmup < 1 or config.repeats < 1:
        raise ValueError("warmup and repeats must be at least 1.")
    check_generation(cell.model, cell.implementation, cell.backend, prompt_length=config.prompt_length,
                     new_tokens=config.new_tokens, batch_size=config.batch_size, jit=cell.jit,
                     compile_mode=cell.compile_mode)
    started = _now_iso()
    load_before = host_load()
    census = ThreadCensus().start()
    spec = get_model_spec(cell.model)
    runner, model, _, _ = prepare_synthetic(cell.model, cell.implementation, cell.backend, batch_size=1,
                                            seed=config.seed, synthetic_train=1, mode=cell.mode)
    if cell.implementation == "torch":
        model.eval()  # Hugging Face's generate refuses a model in training mode (dropout would sample)
        check_compile_mode_here(cell.compile_mode, gpu=model.device.type == "cuda")
    prompt = prompt_batch(config, spec.num_classes)
    kerashub = is_kerashub(cell.model)
    options = {} if kerashub else {"compiled": cell.jit == "on", "compile_mode": cell.compile_mode}
    generate = generate_function(cell.implementation, kerashub=kerashub)

    def one_call() -> dict:
        """One generate call: its seconds, and each token's arrival (None for keras-hub's)."""
        start = time.perf_counter()
        if kerashub:
            tokens, times = generate(model, prompt, max_new_tokens=config.new_tokens).new_tokens, None
        else:
            timed = generate_tokens(cell.implementation, model, prompt, max_new_tokens=config.new_tokens, **options)
            tokens, times = timed.tokens, timed.token_times_s.tolist()
        return {"seconds": time.perf_counter() - start, "token_times_s": times, "tokens": tokens}

    first = one_call()
    warmup_s = first["seconds"] + sum(one_call()["seconds"] for _ in range(config.warmup - 1))
    calls = []
    for index in range(config.repeats):
        before = contention.snapshot()
        census.sample()
        call = one_call()
        call["contention"] = contention.window(before, contention.snapshot())
        call["window"] = index
        calls.append(call)
    same_tokens = all(np.array_equal(call.pop("tokens"), first["tokens"]) for call in calls)

    record = new_record("generate", config, started=started)
    record.update(
        status="ok",
        finished=_now_iso(),
        model={"name": cell.model, "params": runner.count_params(model), "expected_params": spec.params,
               "n_positions": GPT2_SIZES[cell.model.removesuffix(KERASHUB_SUFFIX)].n_positions},
        dataset={"name": "synthetic", "prompt": prompt.tolist()},
        timing={"prompt_length": config.prompt_length, "new_tokens": config.new_tokens,
                "batch_size": config.batch_size, "warmup_calls": config.warmup, "first_call_s": first["seconds"],
                "warmup_s": warmup_s, "compiled_decoding": COMPILED_DECODING.get(cell.pair) if cell.jit == "on"
                else ("keras-hub's compiled loop" if kerashub else "eager"),
                "token_times": None if kerashub else "each token as it reaches the host (on_token)",
                "no_token_times": NO_TOKEN_TIMES if kerashub else None,
                "calls": [{"window": c["window"], "seconds": c["seconds"], "token_times_s": c["token_times_s"]}
                          for c in calls],
                # the windows the verdict rules read (one per timed call)
                "windows": [{"window": c["window"], "calls": 1, "seconds": c["seconds"],
                             "contention": c["contention"]} for c in calls],
                **call_figures(config, calls)},
        tokens={"first_call": first["tokens"].tolist(), "every_call_the_same": same_tokens},
        contention=contention.run_summary([c.get("contention") for c in calls], unavailable=contention.why_not()),
        **process_fields(runner, model, census, load_before, threads=config.threads, cpus=cell.cpus),
    )
    return record
