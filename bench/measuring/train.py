"""One benchmark run (one matrix cell): build, load the canonical weights, evaluate, train, record.

The shared profiler (``twinbench.measuring.profiler``) runs for the whole cell: its sampler thread records a timeline
(CPU %, RSS, and the GPU through NVML where there is one) and ``fit`` marks every epoch's begin and end
and opens a window for each epoch's training and evaluation. The record (``twinbench.records``)
carries the timing figures with their spread (``twinbench.measuring.timing.train_timing``); the timeline goes into a
sidecar file next to it.

This module never imports a framework itself; it goes through ``twinbench.backends.get_runner``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twinbench import data as datasets
from twinbench.backends import get_runner
from twinbench.backends.base import TrainConfig
from twinbench.backends.checkpoints import pretrained_weights
from twinbench.cell import CellConfig
from twinbench.measuring import contention, mfu
from twinbench.measuring.environment import collect_environment, launcher_of
from twinbench.measuring.faults import maybe_inject_fault
from twinbench.measuring.profiler import Profiler
from twinbench.measuring.threads import SamplingEvents, ThreadCensus
from twinbench.measuring.timing import host_load, memory_figures, timeline_segment, train_timing
from twinbench.models import get_model_spec
from twinbench.models.weights import save_weights
from twinbench.records import new_record
from twinbench.records import now_iso as _now_iso  # a module name of its own: tests pin the clock here


@dataclass(frozen=True)
class RunConfig(CellConfig):
    """Everything that defines one run: the cell (its dataset and axes included) and how it is trained; recorded
    verbatim (``CellConfig.as_dict``)."""

    command = "train"

    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    data_dir: str | None = None
    input_shape: tuple[int, int, int] | None = None  # default: the model's own
    num_classes: int | None = None
    progress: bool = False
    timing_window: int = 10  # steps per steady-state timing window (sync at its edges only); 0: none
    profile: bool = True  # the profiler's sampler thread (windows and markers are recorded either way)
    profile_interval_s: float = 0.15  # seconds between profiler samples
    threads: int | None = None  # CPU threads per framework pool (twinbench.backends.limit_threads); None: defaults
    synthetic_train: int | None = None  # samples of the synthetic dataset (default: twinbench.data.synthetic's)
    synthetic_test: int | None = None
    weights: str | None = None  # pretrained start: a torchvision .pth (torch env) or a neutral .npz
    save_weights: str | None = None  # write the trained weights here (neutral .npz, BatchNorm statistics included)


def execute(config: RunConfig, *, events=None) -> dict:
    """Run one cell and return its record (status ``ok``); exceptions propagate to the caller.

    ``events``: something with the profiler's ``mark``/``window`` methods to report to instead of the
    run's own profiler (then the record has no ``profile`` and no timeline).
    """

    cell = config.cell
    started = _now_iso()
    load_before = host_load()
    census = ThreadCensus().start()
    spec = get_model_spec(cell.model)
    datasets.check_dataset_for_task(cell.dataset, spec.task, model=cell.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    num_classes = config.num_classes or spec.num_classes
    dataset = datasets.load_dataset(cell.dataset, input_shape=input_shape, num_classes=num_classes,
                                    data_dir=config.data_dir, seed=config.seed,
                                    synthetic_train=config.synthetic_train, synthetic_test=config.synthetic_test,
                                    task=spec.task)
    if spec.task != datasets.tasks.DEFAULT_TASK:
        input_shape = dataset.input_shape  # token lengths, users x items: the data's (twinbench.data.tasks)
    runner = get_runner(cell.implementation, cell.backend, mode=cell.mode, replication=cell.replication)
    runner.setup(seed=config.seed)
    train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                               learning_rate=config.learning_rate, seed=config.seed, progress=config.progress,
                               timing_window=config.timing_window, drop_last=cell.replication.replicas > 1)

    profiler, others = None, []
    if events is None:
        profiler = Profiler(interval_s=config.profile_interval_s, enabled=config.profile)
        events = profiler.start()
        # A data-parallel cell on GPUs: NVML samples every replica's device, not only the one this process drives.
        others = [Profiler(interval_s=config.profile_interval_s, device_index=index, enabled=config.profile).start()
                  for index in runner.replicas.gpu_indices() if index != profiler.device_index]
    try:
        with events.window("build", phase="build"):
            t0 = time.perf_counter()
            weights, weights_info = None, {"source": f"canonical initial weights (seed {config.seed})"}
            if config.weights:  # the fine-tuning start: a checkpoint, with a new classifier if the classes differ

                initial = runner.canonical_weights(cell.model, input_shape=input_shape,
                                                   num_classes=dataset.num_classes, seed=config.seed)
                weights, weights_info = pretrained_weights(cell.model, config.weights, canonical=initial,
                                                           input_shape=input_shape)
                weights_info = {"source": "checkpoint", **weights_info}
            model = runner.prepare(cell.model, input_shape=input_shape, num_classes=dataset.num_classes,
                                   seed=config.seed, weights=weights)
            del weights
            build_s = time.perf_counter() - t0
        with events.window("eval-before", phase="eval"):
            t0 = time.perf_counter()
            accuracy_before, metrics_before = runner.epoch_metrics(model, dataset,
                                                                   batch_size=train_config.eval_batch_size)
            eval_before_s = time.perf_counter() - t0
        maybe_inject_fault(model=cell.model, batch_size=config.batch_size)  # tests only; see bench/faults.py
        # --epochs 0 evaluates only (e.g. weights loaded with --weights); tf.keras' fit refuses zero epochs
        counted = contention.EpochContention(SamplingEvents(events, census))  # how busy the machine was, per epoch
        epochs = runner.fit(model, dataset, train_config, events=counted) if config.epochs else []
    finally:
        if profiler is not None:
            profiler.stop()
        for other in others:
            other.stop()

    if config.save_weights and runner.replicas.rank == 0:  # the trained model, loadable by every implementation
        save_weights(config.save_weights, runner.get_weights(model))
        weights_info = {**weights_info, "saved_to": str(config.save_weights)}
    epoch_dicts = [e.as_dict() for e in epochs]
    counted.annotate(epoch_dicts)  # each epoch's "contention" (twinbench.measuring.contention)
    profile = profiler.summary() if profiler is not None else None
    record = new_record("train", config, started=started)
    record.update(
        status="ok",
        finished=_now_iso(),
        model={"name": cell.model, "params": runner.count_params(model),
               "expected_params": spec.params if input_shape == tuple(spec.input_shape) else None,
               "input_shape": list(input_shape), "num_classes": dataset.num_classes},
        dataset={"name": dataset.name, "train": datasets.tasks.num_samples(dataset.x_train),
                 "test": datasets.tasks.num_samples(dataset.x_test),
                 **{k: v for k, v in dataset.meta.items() if isinstance(v, (str, int, float, bool, list))}},
        weights=weights_info,
        results={
            "accuracy_before": accuracy_before,
            "accuracy_after": epochs[-1].test_accuracy if epochs else accuracy_before,
            "final_loss": epochs[-1].loss if epochs else None,
            "epochs": epoch_dicts,
            "build_s": build_s,
            "eval_before_s": eval_before_s,
            **({"task": spec.task, "metrics_before": metrics_before,
                "metrics_after": epochs[-1].test_metrics if epochs else metrics_before}
               if metrics_before is not None else {}),
        },
        timing=train_timing(epoch_dicts, batch_size=config.batch_size),
        # How many epochs the machine was busy in (each epoch's own figures: results.epochs[].contention).
        contention=contention.run_summary([e["contention"] for e in epoch_dicts], unavailable=contention.why_not()),
        settings=runner.describe(model),
        memory=memory_figures(runner.memory_stats(), profile),
        profile=profile,
        profile_devices=[other.summary() for other in others] or None,
        host_load={"before": load_before, "after": host_load()},
        environment=collect_environment(),
        launcher=launcher_of(runner),
        threads=census.finish(pools=runner.describe_threads(), requested=config.threads, cpus=cell.cpus,
                              sampler={"enabled": config.profile, "interval_s": config.profile_interval_s}),
    )
    if record["timing"].get("throughput_images_per_s"):
        record["efficiency"] = mfu.run_efficiency(record, model_name=cell.model, input_shape=input_shape,
                                                  num_classes=dataset.num_classes)
    if profiler is not None:
        record["timeline"] = [timeline_segment(profiler, name="run")]  # moved to a sidecar by write_record
    return record

