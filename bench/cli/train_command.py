"""``twinbench train``: one cell in this process (``--impl``), or an environment's cells (``--env``): each in its own
child process, all one after another in one child process, or all in this process (``--cell-processes``,
``twinbench.measuring.children``). Bad input is checked before any framework is imported; a failed cell is recorded
and the others go on."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys

from twinbench.backends import distributed
from twinbench.cell import Cell, axes_argv, environment_cells
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
from twinbench.cli.run_commands import cell_of, dataset_of, launch_ranks
from twinbench.measuring import children
from twinbench.measuring.faults import is_out_of_memory
from twinbench.measuring.train import RunConfig, execute
from twinbench.records import failed_record, write_record


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
        return launch_ranks("train", args, config)
    apply_axes(config.cell)
    limit_threads(args.threads)
    return _train_run(config, out=args.out, oom_retry=args.oom_retry)


def _train_config(args) -> RunConfig:
    """The ``RunConfig`` of the one cell ``args`` names, checked before any framework is imported (bad input: one
    line, exit code 2)."""
    try:
        cell = cell_of(args, "train", dataset_of(args.model, args.dataset))
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
        cells = {model: environment_cells(args.env, model, dataset=dataset_of(model, args.dataset),
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
        if not os.environ.get(children.SHARED_PROCESS_ENV):  # in a shared process its parent has said so already
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
