"""The commands that run cells: ``train``, ``throughput``, ``profiler-cost``, ``definition-effect`` (and
``convert-weights``, which prepares their weights). Each checks its input, runs one cell here or an
environment's cells in child processes, and records a failure before it reports it."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import subprocess
import sys
from pathlib import Path

from twinbench import data as datasets
from twinbench.backends import distributed, missing_packages, resolve_backend, select_keras_backend
from twinbench.backends.base import COMPILED_STYLES, check_compile_mode, check_style
from twinbench.backends.checkpoints import (
    FORMAT_NAMES,
    CheckpointError,
    checkpoint_format,
    convert_checkpoint,
)
from twinbench.backends.environments import NATIVES, RUN_ENVIRONMENTS
from twinbench.backends.export import EXPORT_FORMATS, check_format
from twinbench.cell import Cell, axes_argv, cell_argv, environment_cells
from twinbench.cli.checks import (
    USER_ERRORS,
    apply_axes,
    check_writable,
    limit_threads,
    resolve_axes,
    validate_cell,
    validate_save_weights,
    validate_weights,
)
from twinbench.cli.options import EXIT_FAILED, CliError, axis_values, child_args
from twinbench.measuring import alternate, children, interleave
from twinbench.measuring.environment import alternation_slot
from twinbench.measuring.faults import is_out_of_memory
from twinbench.measuring.generate import GenerateConfig, check_generation, execute_generate, generation_models
from twinbench.measuring.latency import LatencyConfig, execute_latency
from twinbench.measuring.throughput import ThroughputConfig, execute_throughput
from twinbench.measuring.trace import TraceConfig, execute_trace
from twinbench.measuring.train import RunConfig, execute
from twinbench.models import check_choice, get_model_spec
from twinbench.models.gpt2.generation import COMPILED_DECODING
from twinbench.records import failed_record, load_records, write_record
from twinbench.results.generation import generation_lines
from twinbench.results.latency import latency_lines
from twinbench.results.ops import ops_lines
from twinbench.results.text import overhead_text, record_label
from twinbench.results.timing_verdicts import run_text, verdict_section
from twinbench.studies import definition_effect, profiler_cost
from twinbench.studies.profiler_cost import CostConfig, cost_text, profiler_cost_section


def record_failure(kind: str, config, err: Exception, *, out) -> int:
    """A run that failed: its failed record written to ``out``, one line on the terminal; returns ``EXIT_FAILED``."""
    record = failed_record(kind, config, err)
    slot = alternation_slot()
    if slot is not None:  # a process of an alternated sequence: its timing verdicts list it as failed
        record["alternation"] = slot
    path = write_record(record, out)
    print(f"twinbench: run failed: {type(err).__name__}: {record['error']['message']} (recorded in {path})",
          file=sys.stderr)
    return EXIT_FAILED


def run_here(kind: str, config, execute, *, out, threads, show) -> int:
    """One cell's run in this process: its axes applied and its threads limited, then ``execute(config)``; a run
    that fails is recorded (``record_failure``), one that ends is written and ``show(record)``'s lines printed with
    the record's path."""
    try:
        apply_axes(config.cell)
        limit_threads(threads)
        record = execute(config)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    except Exception as err:  # the run failed: record it
        return record_failure(kind, config, err, out=out)
    path = write_record(record, out)
    for line in show(record):
        print(line)
    print(f"record {path}")
    return 0


def _cell_of(args, command: str, dataset: str) -> Cell:
    """The one cell that ``--model``, ``--impl``, ``--backend`` and ``command``'s axis options name, its axes checked
    (their values, and that the implementation has each one set); raises the user errors of ``USER_ERRORS``."""
    cell = Cell(args.model, args.impl, resolve_backend(args.impl, args.backend), dataset, **axis_values(args, command))
    cell.check_values()
    cell.check_applies()
    return cell


def _dataset_of(model: str, dataset: str | None) -> str:
    """``--dataset``, or where it is not given the model's own (its task's default: digits, pydoc, ...)."""
    return dataset or datasets.get_task(get_model_spec(model).task).default_dataset


def cmd_train(args) -> int:
    """One cell in this process (``--impl``), or an environment's cells each in its own (``--env``)."""
    if args.env is not None:
        return _train_env(args)
    if not args.model:
        raise CliError("the following arguments are required with --impl: --model")
    return _train_cell(args)


def _train_cell(args) -> int:
    config = _train_config(args)
    if distributed.needs_launcher(args.impl, config.cell.replication):
        return _launch_ranks("train", args, config)
    apply_axes(config.cell)
    limit_threads(args.threads)
    return _train_run(config, out=args.out, oom_retry=args.oom_retry)


def _train_config(args) -> RunConfig:
    """The ``RunConfig`` of the one cell ``args`` names, checked before any framework is imported (bad input: one
    line, exit code 2)."""
    try:
        cell = _cell_of(args, "train", _dataset_of(args.model, args.dataset))
        validate_cell(args.model, args.impl, args.backend, args.dataset, args.input_shape, cell.mode)
        distributed.check_launch(args.impl, cell.replication)
        validate_weights(args.weights, args.model, cell.backend)
        validate_save_weights(args.save_weights)
    except (*USER_ERRORS, ValueError) as err:
        raise CliError(str(err)) from None
    cell = resolve_axes(cell)
    check_writable(args.out)
    return RunConfig(cell, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                     data_dir=args.data_dir, input_shape=args.input_shape, num_classes=args.num_classes,
                     progress=args.progress, timing_window=args.timing_window, profile=args.profile,
                     profile_interval_s=args.profile_interval, threads=args.threads,
                     synthetic_train=args.synthetic_train, synthetic_test=args.synthetic_test,
                     weights=args.weights, save_weights=args.save_weights)


def _train_run(config: RunConfig, *, out, oom_retry: bool, shared_process: dict | None = None) -> int:
    """Train ``config``'s cell in this process (its axes and threads already applied) and write its record, or its
    failed record; ``shared_process``: where it ran one after another with other cells (``record["shared_process"]``,
    ``twinbench.measuring.children``). Returns 0, or ``EXIT_FAILED``."""
    writer = distributed.launched_rank() is None or distributed.launched_rank()[0] == 0
    # The run: problems with the user's files are still bad input; anything else is a failed cell,
    # recorded with its reason so that the matrix shows it. Out of memory may retry at half the batch.
    oom_attempts = []
    while True:
        try:
            record = execute(config)
            break
        except USER_ERRORS as err:
            raise CliError(str(err)) from None
        except Exception as err:
            out_of_memory = is_out_of_memory(err)
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if not writer:  # rank 0 records the cell; torchrun ends the others
                print(f"twinbench: rank {distributed.launched_rank()[0]} failed: {type(err).__name__}: {message}",
                      file=sys.stderr)
                return EXIT_FAILED
            if out_of_memory and oom_retry and config.batch_size > 1:
                oom_attempts.append({"batch_size": config.batch_size, "error": message})
                print(f"twinbench: out of memory at batch size {config.batch_size}; retrying with "
                      f"{config.batch_size // 2}", file=sys.stderr)
                config = dataclasses.replace(config, batch_size=config.batch_size // 2)
                _free_memory()
                continue
            record = failed_record("train", config, err, out_of_memory=out_of_memory, batch_size=config.batch_size)
            if oom_attempts:
                record["oom_retries"] = oom_attempts
            if shared_process is not None:
                record["shared_process"] = shared_process
            path = write_record(record, out)
            kind = "out of memory" if out_of_memory else "run failed"
            print(f"twinbench: {kind}: {type(err).__name__}: {message} at batch size {config.batch_size} "
                  f"(recorded in {path})", file=sys.stderr)
            return EXIT_FAILED
    if oom_attempts:  # clearly marked: this cell did not run at the requested batch size
        record["oom_retries"] = oom_attempts
        record["retried_after_oom"] = {"requested_batch_size": oom_attempts[0]["batch_size"],
                                       "batch_size": config.batch_size}
    if not writer:
        return 0
    if shared_process is not None:
        record["shared_process"] = shared_process
    path = write_record(record, out)
    results = record["results"]
    metric = next(iter(results["metrics_after"])) if "metrics_after" in results else "accuracy"  # twinbench.data.tasks
    print(f"{config.cell.file_id}: params {record['model']['params']:,}, {metric} {results['accuracy_before']:.3f} -> "
          f"{results['accuracy_after']:.3f}, final loss {results['final_loss']}, record {path}")
    step = record["timing"]["steady_step_s"]
    if step:
        print(f"{config.cell.file_id}: steady-state step {1e3 * step['median']:.2f} ms (IQR {1e3 * step['q1']:.2f}-"
              f"{1e3 * step['q3']:.2f}, {step['n']} windows), first step {1e3 * record['timing']['first_step_s']:.0f} ms")
    return 0


def _launch_ranks(command: str, args, config) -> int:
    """torch DDP: run the cell's ranks under torchrun, each with the cell's options and the command's others. Rank 0
    records the cell; where no rank got to record it (a rank died, or hung past the collective timeout and torchrun
    ended the rest), the failed record is written here."""
    out = Path(args.out)
    before = set(out.glob("*.json"))
    replicas = config.cell.replicas
    argv = [command, *cell_argv(config.cell, command), "--out", str(out),
            *child_args(args, leave_out=("env", "models", "model", "impl", "backend", "dataset", "out", "resume"))]
    print(f"[{command}] {config.cell.file_id}: {replicas} ranks under torchrun", flush=True)
    code = subprocess.call(distributed.torchrun_command(replicas, argv))
    if code == 0:
        return 0
    if not set(out.glob("*.json")) - before:
        err = RuntimeError(f"torchrun ended with exit code {code}: a rank died or hung (collective timeout "
                           f"{distributed.collective_timeout_s():g} s) before rank 0 recorded the cell")
        path = write_record(failed_record(command, config, err, launcher="torchrun"), out)
        print(f"twinbench: run failed: {err} (recorded in {path})", file=sys.stderr)
    return EXIT_FAILED


def _free_memory():
    """Give memory back between out-of-memory retries (framework caches included)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train_env(args) -> int:
    if args.save_weights:
        raise CliError("--save-weights writes one cell's weights: give --impl (and --backend), not --env")
    try:
        models = [args.model] if args.model else [m for m in args.models.split(",") if m]
        cells = {model: environment_cells(args.env, model, dataset=_dataset_of(model, args.dataset),
                                          **axis_values(args, "train")) for model in models}
        for model in models:
            for cell in cells[model]:
                validate_cell(model, cell.implementation, cell.backend, cell.dataset, args.input_shape, cell.mode)
                validate_weights(args.weights, model, cell.backend)
        cells = {model: [resolve_axes(cell) for cell in cells[model]] for model in models}
        check_writable(args.out)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    run_args = child_args(args, leave_out=("env", "models", "model", "impl", "backend", "dataset", "out", "resume",
                                           "cell_processes", *children.LAUNCHER_OPTIONS))
    for model in models:
        if not cells[model]:
            print(f"[train] {model}: no implementation in the {args.env} environment runs this mode, skipped", flush=True)
    all_cells = [cell for model in models for cell in cells[model]]
    if args.resume:
        done = [cell for cell in all_cells if children.completed(args.out, cell, kind="train")]
        for cell in done:
            print(f"[train] {cell.file_id}: done already, skipped (--resume)", flush=True)
        all_cells = [cell for cell in all_cells if cell not in done]

    def each_in_its_own(some_cells) -> int:
        return children.run_cells("train", some_cells, out_dir=args.out, child_args=run_args,
                                  launcher=children.launcher_of(args))

    mode = args.cell_processes
    why_not = _why_not_one_process(args, all_cells) if mode != "each" else None
    if why_not and mode == "this":
        raise CliError(f"--cell-processes this cannot run these cells in one process: {why_not}.")
    if why_not:
        print(f"[train] each cell in its own process: {why_not}", flush=True)
        mode = "each"
    if mode == "this":
        failures = _train_here(args, all_cells)
    elif mode == "one" and all_cells:
        worker_argv = ["--env", args.env, "--models", ",".join(models), *axes_argv(all_cells[0], "train"),
                       *(["--dataset", args.dataset] if args.dataset else []), "--out", str(args.out), *run_args,
                       *(["--resume"] if args.resume else []), "--cell-processes", "this"]
        failures = children.run_cells_in_one_process("train", all_cells, out_dir=args.out, worker_argv=worker_argv,
                                                     run_rest=each_in_its_own)
    else:
        failures = each_in_its_own(all_cells)
    return EXIT_FAILED if failures else 0


def _why_not_one_process(args, cells: list[Cell]) -> str | None:
    """Why ``cells`` (one environment's) cannot run one after another in one process, or ``None``: one Keras backend
    per process, cell processes started here, one device, and no process-wide compiler caches."""
    if args.launcher != "local":
        return f"--launcher {args.launcher} starts one job per cell"
    if len({cell.backend for cell in cells}) > 1:
        return f"the {args.env} environment's cells run on different backends (one Keras backend per process)"
    if any(cell.replicas > 1 for cell in cells):
        return "data-parallel replicas need their own processes"
    if any(cell.backend == "torch" and cell.jit == "on" for cell in cells):
        return "torch.compile's caches and recompile limits are process-wide (--jit on)"
    return None


def _train_here(args, cells: list[Cell]) -> int:
    """``cells`` one after another in this process: every cell checked first, the process set up once (its axes and
    threads, before any framework starts), then each cell's own run and record (``_train_run``). A cell that fails is
    recorded and the next goes on. Returns the number that failed."""
    configs = [_train_config(argparse.Namespace(**{**vars(args), "model": cell.model, "impl": cell.implementation,
                                                   "backend": cell.backend, "dataset": cell.dataset}))
               for cell in cells]
    if not configs:
        return 0
    apply_axes(configs[0].cell)
    limit_threads(args.threads)
    failures = 0
    for position, config in enumerate(configs):
        print(f"[train] {config.cell.file_id}: running ({position + 1} of {len(configs)} in this process)", flush=True)
        try:
            code = _train_run(config, out=args.out, oom_retry=args.oom_retry,
                              shared_process=children.shared_process([c.cell for c in configs], position))
        except CliError as err:  # the user's files, found wrong during the run: no record, as in a process of its own
            print(f"twinbench: error: {err}", file=sys.stderr)
            code = EXIT_FAILED
        if code != 0:
            failures += 1
            print(f"[train] {config.cell.file_id}: FAILED; the others go on", flush=True)
        _free_memory()  # the cell's model and data are gone before the next one starts
    return failures


def cmd_throughput(args) -> int:
    try:
        if args.env is not None:
            cells = environment_cells(args.env, args.model, dataset="synthetic", **axis_values(args, "throughput"))
            if not cells:
                raise CliError(f"Model {args.model!r} has no implementation in the {args.env} environment that runs "
                               f"this mode (it has: {', '.join(get_model_spec(args.model).builders)}).")
            interleaved = _interleaves(args, cells)  # before the environment is checked: a wrong option first
            keras_backend = cells[0].backend if args.env == NATIVES else None  # one Keras for both native twins
            for cell in cells:
                validate_cell(args.model, cell.implementation, cell.backend, "synthetic", args.input_shape, cell.mode,
                              keras_backend=keras_backend)
        else:
            cell = _cell_of(args, "throughput", "synthetic")
            validate_cell(args.model, args.impl, args.backend, "synthetic", args.input_shape, cell.mode)
            distributed.check_launch(args.impl, cell.replication)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None

    if args.env is not None:
        cells = [resolve_axes(cell) for cell in cells]  # as the children name them (--resume)
        if interleaved:
            return _throughput_interleaved(args, cells)
        bench_args = child_args(args, leave_out=("env", "model", "impl", "backend", "out", "resume", "interleave",
                                                 *children.LAUNCHER_OPTIONS))
        failures = children.run_cells("throughput", cells, out_dir=args.out, child_args=bench_args,
                                      resume=args.resume, launcher=children.launcher_of(args))
        return EXIT_FAILED if failures else 0

    cell = resolve_axes(cell)
    config = ThroughputConfig(cell, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                              repeats=args.repeats, overhead_repeats=args.overhead_repeats,
                              compute_repeats=args.compute_repeats, seed=args.seed, learning_rate=args.lr,
                              input_shape=args.input_shape, num_classes=args.num_classes, threads=args.threads,
                              profile_interval_s=args.profile_interval)
    if distributed.needs_launcher(args.impl, cell.replication):
        return _launch_ranks("throughput", args, config)
    if distributed.launched_rank() is not None and distributed.launched_rank()[0] != 0:
        apply_axes(cell)
        limit_threads(args.threads)
        try:
            execute_throughput(config)  # the other ranks train with rank 0, which records the cell
        except Exception as err:
            print(f"twinbench: rank {distributed.launched_rank()[0]} failed: {type(err).__name__}: {err}",
                  file=sys.stderr)
            return EXIT_FAILED
        return 0
    try:
        apply_axes(cell)
        limit_threads(args.threads)
        record = execute_throughput(config)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    except ValueError as err:
        raise CliError(str(err)) from None
    except Exception as err:  # the run failed: record it
        return record_failure("throughput", config, err, out=args.out)
    path = write_record(record, args.out)
    timing, overhead = record["timing"], record["profiler_overhead"]
    step, rate = timing["steady_step_s"], timing["throughput_images_per_s"]
    print(f"{config.cell.file_id} batch {config.batch_size}: first step {1e3 * timing['first_step_s']:.0f} ms; "
          f"steady step {1e3 * step['median']:.2f} ms (IQR {1e3 * step['q1']:.2f}-{1e3 * step['q3']:.2f}, "
          f"95% CI {1e3 * step['ci_low']:.2f}-{1e3 * step['ci_high']:.2f}, {step['n']} repeats x {config.steps} steps); "
          f"{rate['median']:.0f} images/s")
    if overhead:
        print(f"{config.cell.file_id}: profiler cost {overhead_text(overhead)}; record {path}")
    else:
        print(f"{config.cell.file_id}: record {path}")
    return 0


def cmd_latency(args) -> int:
    """One cell's inference latency in this process (``--impl``), or an environment's cells each in its own (``--env``)."""
    try:
        if args.env is not None:
            cells = environment_cells(args.env, args.model, dataset="synthetic", **axis_values(args, "latency"))
            cells = [cell for cell in cells if cell.jit != "on" or cell.style in COMPILED_STYLES[cell.implementation]]
            cells = [cell for cell in cells if cell.artifact == "none" or cell.artifact in EXPORT_FORMATS[cell.pair]]
            if not cells:
                raise CliError(f"Model {args.model!r} has no implementation in the {args.env} environment that runs "
                               f"this mode and style (it has: {', '.join(get_model_spec(args.model).builders)}).")
        else:
            cells = [_cell_of(args, "latency", "synthetic")]
        for cell in cells:
            check_style(cell.implementation, cell.style, cell.jit, cell.artifact)
            check_compile_mode(cell.compile_mode, cell.jit)
            if cell.artifact != "none":
                check_format(cell.implementation, cell.backend, cell.artifact)
            validate_cell(args.model, cell.implementation, cell.backend, "synthetic", args.input_shape, cell.mode)
        check_writable(args.out)
    except (*USER_ERRORS, ValueError) as err:
        raise CliError(str(err)) from None
    cells = [resolve_axes(cell) for cell in cells]
    if args.env is not None:
        bench_args = child_args(args, leave_out=("env", "model", "impl", "backend", "out", "resume",
                                                 *children.LAUNCHER_OPTIONS))
        failures = children.run_cells("latency", cells, out_dir=args.out, child_args=bench_args, resume=args.resume,
                                      launcher=children.launcher_of(args))
        return EXIT_FAILED if failures else 0
    config = LatencyConfig(cells[0], batch_sizes=tuple(args.batch_sizes), calls=args.calls, repeats=args.repeats,
                           warmup=args.warmup, seed=args.seed, input_shape=args.input_shape,
                           num_classes=args.num_classes, threads=args.threads)
    return run_here("latency", config, execute_latency, out=args.out, threads=args.threads, show=latency_lines)


def cmd_generate(args) -> int:
    """One cell's GPT-2 generation in this process (``--impl``), or an environment's cells each in its own
    (``--env``); the sizes and the cell are checked before any framework starts."""
    sizes = {"prompt_length": args.prompt_length, "new_tokens": args.new_tokens, "batch_size": args.batch_size}
    try:
        if args.env is not None:
            cells = environment_cells(args.env, args.model, dataset="synthetic", **axis_values(args, "generate"))
            if args.jit == "on":
                cells = [cell for cell in cells if cell.pair in COMPILED_DECODING]
            if args.model not in generation_models():  # named before anything else
                check_generation(args.model, "keras", args.env, **sizes)
            if not cells:
                raise CliError(f"Model {args.model!r} has no implementation in the {args.env} environment that "
                               f"generates in this mode (it has: {', '.join(get_model_spec(args.model).builders)}).")
        else:
            cells = [_cell_of(args, "generate", "synthetic")]
        for cell in cells:
            check_generation(cell.model, cell.implementation, cell.backend, jit=cell.jit,
                             compile_mode=cell.compile_mode, **sizes)
            validate_cell(args.model, cell.implementation, cell.backend, "synthetic", None, cell.mode)
        check_writable(args.out)
    except (*USER_ERRORS, ValueError) as err:
        raise CliError(str(err)) from None
    cells = [resolve_axes(cell) for cell in cells]
    if args.env is not None:
        bench_args = child_args(args, leave_out=("env", "model", "impl", "backend", "out", "resume",
                                                 *children.LAUNCHER_OPTIONS))
        failures = children.run_cells("generate", cells, out_dir=args.out, child_args=bench_args,
                                      resume=args.resume, launcher=children.launcher_of(args))
        return EXIT_FAILED if failures else 0
    config = GenerateConfig(cells[0], repeats=args.repeats, warmup=args.warmup, seed=args.seed, threads=args.threads,
                            **sizes)
    return run_here("generate", config, execute_generate, out=args.out, threads=args.threads, show=generation_lines)


def cmd_alternate(args) -> int:
    """Every environment given (``--python ENV=PATH``) runs its cells of ``--model`` in short throughput processes,
    alternated A,B,B,A (``twinbench.measuring.alternate``); then the timing verdicts of that sequence."""
    pythons = dict(args.python)
    if not pythons:
        raise CliError(f"give each environment's Python: --python ENV=PATH (environments: "
                       f"{', '.join(RUN_ENVIRONMENTS)})")
    for env, python in pythons.items():
        if not Path(python).exists():
            raise CliError(f"the Python of environment {env} does not exist: {python!r}")
    try:
        cells = {env: [resolve_axes(cell) for cell in environment_cells(env, args.model, dataset="synthetic",
                                                                         allocator=args.allocator)]
                 for env in RUN_ENVIRONMENTS if env in pythons}
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    if not any(cells.values()):
        raise CliError(f"model {args.model!r} has no implementation in {', '.join(pythons)}")
    check_writable(args.out)
    sizes = ["--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
             "--repeats", str(args.repeats), "--overhead-repeats", "0", "--compute-repeats", "0",
             *(["--threads", str(args.threads)] if args.threads else [])]
    sequence = alternate.run_alternated(cells, pythons, out_dir=args.out, blocks=args.blocks, budget_s=args.budget_s,
                                        process_timeout_s=args.process_timeout_s, child_args=sizes)
    records = [r for r in load_records(args.out)[0]
               if (r.get("alternation") or {}).get("sequence") == sequence.sequence]
    stopped = f"the budget of {args.budget_s:g} s" if sequence.stopped == "budget" else f"--blocks {args.blocks}"
    run = (f"{run_text(records)}; {sequence.seconds:.0f} s, stopped by {stopped}; sequence {sequence.sequence} "
           f"in {args.out}")
    print(verdict_section(records, run=run))
    if sequence.failures:
        print(f"twinbench: {sequence.failures} of {len(sequence.slots)} processes failed (their records say why)",
              file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_trace(args) -> int:
    """One cell's steady-state steps under its framework's own profiler, in this process; prints the op table."""
    try:
        cell = _cell_of(args, "trace", "synthetic")
        validate_cell(args.model, args.impl, args.backend, "synthetic", args.input_shape, cell.mode)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    cell = resolve_axes(cell)
    check_writable(args.out)
    config = TraceConfig(cell, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, seed=args.seed,
                         learning_rate=args.lr, input_shape=args.input_shape, num_classes=args.num_classes,
                         threads=args.threads)
    return run_here("trace", config, execute_trace, out=args.out, threads=args.threads,
                    show=lambda record: ops_lines(record_label(record), record["ops"]))


def _interleaves(args, cells) -> bool:
    """Whether ``throughput --env`` runs its cells in this one process (``twinbench.measuring.interleave``): asked for with
    ``--interleave`` (an error where it cannot), refused with ``--no-interleave``, and by default wherever it can."""
    if args.interleave is False or args.launcher != "local":
        if args.interleave and args.launcher != "local":
            raise CliError("--interleave runs the cells in this process: it takes --launcher local only.")
        if args.env == NATIVES:
            raise CliError(f"--env {NATIVES} runs the two native twins interleaved in one process only; for each in "
                           f"its own process: --env torch or --env tensorflow.")
        return False
    try:
        interleave.check_interleave(cells)
    except interleave.InterleaveError as err:
        if args.interleave or args.env == NATIVES:
            raise CliError(str(err)) from None
        return False
    return True


def _throughput_interleaved(args, cells) -> int:
    """The cells of ``--env`` in this process, window by window (``twinbench.measuring.interleave``); one record each."""
    check_writable(args.out)
    base = ThroughputConfig(cells[0], batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                            repeats=args.repeats, seed=args.seed, learning_rate=args.lr, input_shape=args.input_shape,
                            num_classes=args.num_classes, threads=args.threads,
                            profile_interval_s=args.profile_interval)
    configs = interleave.interleaved_configs(base, cells)
    if args.resume and all(children.completed(args.out, config.cell, kind="throughput") for config in configs):
        print(f"[throughput] {args.model} {args.env}: interleaved cells done already, skipped (--resume)", flush=True)
        return 0
    print(f"[throughput] {', '.join(config.cell.file_id for config in configs)}: interleaved in one process "
          f"({interleave.ORDER}, {args.repeats} windows each)", flush=True)
    try:
        apply_axes(cells[0])  # one process: the cells share their CPUs and allocator
        limit_threads(args.threads)
        records = interleave.execute_interleaved(configs)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    except ValueError as err:
        raise CliError(str(err)) from None
    except Exception as err:  # the run failed: both cells shared it, so both are recorded as failed
        for config in configs:
            record_failure("throughput", config, err, out=args.out)
        return EXIT_FAILED
    for config, record in zip(configs, records, strict=True):
        path = write_record(record, args.out)
        step = record["timing"]["steady_step_s"]
        print(f"{config.cell.file_id} batch {config.batch_size}: steady step {1e3 * step['median']:.2f} ms (IQR "
              f"{1e3 * step['q1']:.2f}-{1e3 * step['q3']:.2f}, {step['n']} windows x {config.steps} steps, "
              f"interleaved); record {path}")
    return 0


def cmd_profiler_cost(args) -> int:
    if args.show:
        for directory in args.show:
            if not Path(directory).is_dir():
                raise CliError(f"results directory {directory!r} does not exist")
        records = [r for r in load_records(*args.show)[0] if r.get("kind") == "profiler_cost"]
        if not records:
            raise CliError(f"no profiler-cost records in {', '.join(map(repr, args.show))}; "
                           "write them with twinbench profiler-cost --impl ...")
        print(profiler_cost_section(records))
        return 0
    try:
        cell = _cell_of(args, "profiler-cost", "synthetic")
        validate_cell(args.model, args.impl, args.backend, "synthetic", args.input_shape)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    config = CostConfig(cell, batch_size=args.batch_size, steps=args.steps, cycles=args.cycles,
                        intervals_s=args.intervals, production_interval_s=args.intervals[0], warmup=args.warmup,
                        seed=args.seed, input_shape=args.input_shape, num_classes=args.num_classes,
                        threads=args.threads)
    try:
        limit_threads(args.threads)
        record = profiler_cost.execute_cost(config)  # looked up here: tests replace it
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    except Exception as err:  # the run failed: record it, in one line on the terminal
        return record_failure("profiler_cost", config, err, out=args.out)
    path = write_record(record, args.out)
    print("\n".join(cost_text(record_label(record), record["analysis"])))
    print(f"record {path}")
    return 0


def cmd_definition_effect(args) -> int:
    """Run one environment's cells (``--env``) or print the definition-effect table of ``--out``."""
    families = [f for f in args.families.split(",") if f]
    try:
        for family in families:
            check_choice("model family", family, definition_effect.STOCK)
        if args.env is not None:
            check_choice("environment", args.env, definition_effect.ENV_CELLS)
            for family in families:
                for role, implementation, backend in definition_effect.env_cells(args.env, family):
                    validate_cell(family if role == "matched" else definition_effect.STOCK[family], implementation, backend,
                                   "synthetic", args.input_shape)
            check_writable(args.out)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    if args.env is None:
        try:
            records = definition_effect.load_throughput_records([args.out])
        except FileNotFoundError as err:
            raise CliError(f"{err}; run the cells first (nox -s definition_effect)") from None
        print(definition_effect.definition_effect_table(records, markdown=args.markdown))
        return 0

    bench_args = [*child_args(args, leave_out=("env", "families", "out", "markdown")), "--overhead-repeats", "0"]
    failures = definition_effect.run_cells(args.env, families=families, out_dir=args.out, bench_args=bench_args)
    return EXIT_FAILED if failures else 0


def cmd_convert_weights(args) -> int:
    """Any weights format -> any other: neutral .npz, torchvision state_dict (torch environment), Keras .weights.h5."""
    try:
        get_model_spec(args.model)
        kinds = {checkpoint_format(args.checkpoint), checkpoint_format(args.out)}
        backend = "torch" if "torch" in kinds else resolve_backend("keras")
        validate_weights(args.checkpoint, args.model, backend)
        if "torch" in kinds and missing_packages("torch"):
            raise CheckpointError("A torchvision state_dict is read and written with PyTorch, which this environment "
                                  "lacks: convert in the torch environment.")
        check_writable(Path(args.out).parent)
        select_keras_backend(backend)  # the Keras definition gives the layout (names, Flatten order)
        path, info = convert_checkpoint(args.checkpoint, args.out, args.model, num_classes=args.num_classes,
                                        input_shape=args.input_shape)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    print(f"wrote {path} ({FORMAT_NAMES[checkpoint_format(path)]}; {args.model}, {info['num_classes'] or 'its'} "
          f"classes, from the {info['format']} {args.checkpoint})")
    return 0
