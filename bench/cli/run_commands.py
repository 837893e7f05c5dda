"""The commands that run cells: ``throughput``, ``latency``, ``generate``, ``alternate``, ``trace``, ``profiler-cost``,
``definition-effect`` (and ``convert-weights``, which prepares their weights; ``train`` is ``twinbench.cli.train_command``). Each checks its input, runs one cell here or an
environment's cells in child processes, and records a failure before it reports it."""

from __future__ import annotations

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
from twinbench.cell import Cell, cell_argv, environment_cells
from twinbench.cli.checks import (
    USER_ERRORS,
    apply_axes,
    check_writable,
    limit_threads,
    resolve_axes,
    validate_cell,
    validate_weights,
)
from twinbench.cli.options import EXIT_FAILED, CliError, axis_values, child_args
from twinbench.measuring import alternate, children, interleave
from twinbench.measuring.environment import alternation_slot
from twinbench.measuring.generate import GenerateConfig, check_generation, execute_generate, generation_models
from twinbench.measuring.latency import LatencyConfig, execute_latency
from twinbench.measuring.throughput import ThroughputConfig, execute_throughput
from twinbench.measuring.trace import TraceConfig, execute_trace
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


def cell_of(args, command: str, dataset: str) -> Cell:
    """The one cell that ``--model``, ``--impl``, ``--backend`` and ``command``'s axis options name, its axes checked
    (their values, and that the implementation has each one set); raises the user errors of ``USER_ERRORS``."""
    cell = Cell(args.model, args.impl, resolve_backend(args.impl, args.backend), dataset, **axis_values(args, command))
    cell.check_values()
    cell.check_applies()
    return cell


def dataset_of(model: str, dataset: str | None) -> str:
    """``--dataset``, or where it is not given the model's own (its task's default: digits, pydoc, ...)."""
    return dataset or datasets.get_task(get_model_spec(model).task).default_dataset


def launch_ranks(command: str, args, config) -> int:
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
            cell = cell_of(args, "throughput", "synthetic")
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
        return launch_ranks("throughput", args, config)
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
            cells = [cell_of(args, "latency", "synthetic")]
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
            cells = [cell_of(args, "generate", "synthetic")]
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
        cell = cell_of(args, "trace", "synthetic")
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
        cell = cell_of(args, "profiler-cost", "synthetic")
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
