"""Every study twinbench runs, as data: ``python -m twinbench study list`` names them, ``study show NAME`` prints a
plan (every run, in order) and ``study run NAME --out DIR`` runs it (``twinbench.studies.runner``).

A study's cells come from the one environment table (``CELLS``, or some of its labels; an environment-wide part
names environments); its models carry their sizes; its variants are the axes it varies; ``{name}`` is one of its
parameters (``--set name=value``). The pages that quote a study's results say which study and which rounds.
"""

from __future__ import annotations

from twinbench.backends.environments import ENVIRONMENTS
from twinbench.backends.what_if import WHAT_IFS
from twinbench.studies.plan import CELLS, Part, Step, Study, StudyError, Variant

ENVIRONMENT_NAMES = tuple(ENVIRONMENTS)  # for the parts that run a command once per environment
# glibc's malloc told to keep the memory it took (backends/allocator.py ``tuned``, as environment variables): the most
# mmap threshold it takes (32 MiB), a trim threshold of 64 GiB, a top pad of 512 MiB.
KEEP_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "68719476736",
               "MALLOC_TOP_PAD_": "536870912"}
# Execution modes on a CPU (docs/modes.md): every cell eager and compiled, float32 and mixed bfloat16, plus the
# variants only some cells have.
MODES = (Variant("default"), Variant("jit-on", "--jit on"), Variant("bfloat16", "--precision mixed_bfloat16"),
         Variant("jit-off", "--jit off", labels=("keras[jax]",)),
         Variant("channels-first", "--data-format channels_first", labels=("keras[torch]",)),
         Variant("channels-last", "--memory-format channels_last", labels=("torch",)))
CPU_LAYOUTS = (Variant("pinned", "--cpus {cpus}"), Variant("free"))


def _interleaved_windows(p) -> int:
    """Windows per cell of an interleaved process: a quarter of the budget per environment, two cells a process."""
    budget_s, start_s, steps = int(p["budget_min"]) * 60, int(p["start_s"]), int(p["steps"])
    return max(2, ((budget_s // 4 - start_s) * 1000 // int(p["step_ms"]) // 2 - 10) // (steps + 1))


def _separate_windows(p) -> int:
    """Windows per separate process: half the budget over ROUNDS x 4 + 1 processes."""
    budget_s, start_s, processes = int(p["budget_min"]) * 60, int(p["start_s"]), int(p["rounds"]) * 4 + 1
    return max(3, ((budget_s // 2 // processes - start_s) * 1000 // int(p["step_ms"]) - 10) // int(p["steps"]))


def _named_pythons(p) -> str:
    """``--python=torch --python=tensorflow ...``: the environments an alternate run starts, each given the study's
    python of that environment when it runs (``twinbench.studies.runner.named_pythons``)."""
    return " ".join(f"--python={env}" for env in str(p["environments"]).split(",") if env)


def _alternated_part() -> Part:
    """One ``twinbench alternate`` run (started in the torch environment's python; it imports no framework) that
    alternates the environments' processes A,B,B,A until the budget, then prints the ratios, their CIs and verdicts.
    Threads and allocator are fixed for every process and stated in every record (the cell's allocator axis; the
    threads under ``threads``)."""
    return Part("", over="environment", cells=("torch",),
                steps=(Step("alternate", "{pythons} --model {model} --batch-size {batch} --steps {steps} "
                                         "--warmup {warmup} --repeats {windows} --threads {threads} "
                                         "--allocator {allocator} --budget-s {budget_s} --blocks 1000 "
                                         "--process-timeout-s 300", out="alternate"),))


def _what_if(p) -> str:
    """The what-if study's ``what_if``, checked: one of ``twinbench.backends.what_if.WHAT_IFS`` (the study has no
    plain run to compare with ``none``)."""
    if p["what_if"] not in WHAT_IFS:
        raise StudyError(f"Unknown what-if {p['what_if']!r}. Valid choices: {', '.join(WHAT_IFS)}.")
    return p["what_if"]


# Where Keras' time goes (docs/where_time_goes.md): the cells of the decomposition and keras[jax] eager beside jit.
CAUSES_CELLS = ("torch", "keras[torch]", "tf_keras", "keras[tensorflow]", "keras[jax]")
CAUSES_VARIANTS = (Variant("default"), Variant("jit-off", "--jit off", labels=("keras[jax]",)))
# Inference: model(x, training=False) runs eager in every backend; keras[jax] compiles predict_on_batch (jit default).
CAUSES_INFER_VARIANTS = (Variant("default"),
                         Variant("jit", "--style predict_on_batch", labels=("keras[jax]",)),
                         Variant("jit-off", "--style predict_on_batch --jit off", labels=("keras[jax]",)))
WHAT_IF_VARIANTS = (Variant("as-is"), Variant("what-if", "--what-if {checked}", labels=("keras[torch]",)))

STUDIES = {study.name: study for study in sorted((
    Study(
        name="cpu", rounds=6, doc="docs/measurements.md",
        summary="the overhead decomposition, its plain-loop cross-check, and the profiler's cost (cifar_cnn, CPU)",
        parts=(
            Part("overhead", models={"cifar_cnn": "--batch-size 64 --warmup 10 --threads 1 --steps 40 --repeats 4"},
                 steps=(Step("throughput", "--overhead-repeats 0", out="bench/round-{round}"),
                        Step("crosscheck", out="crosscheck/round-{round}"))),
            Part("profiler-cost", rounds=1,
                 models={"cifar_cnn": "--batch-size 64 --warmup 10 --threads 1 --steps 20 --repeats 12"},
                 steps=(Step("throughput", "--overhead-repeats 12", out="profiler-cost"),)),
        ),
        afterwards=("compare {out}/bench/round-*",
                    "tools/crosscheck/crosscheck.py --compare {out}/crosscheck {out}/bench",
                    "compare {out}/profiler-cost"),
    ),
    Study(
        name="causes", rounds=1, doc="docs/where_time_goes.md",
        summary="a step's Python time by cause (training, batch-1 inference) and the cost of one layer call",
        params={"threads": "1", "repeats": "3"},
        parts=(
            Part("train", cells=CAUSES_CELLS, variants=CAUSES_VARIANTS,
                 models={"cifar_cnn": "--batch-size 64 --steps 3 --warmup 3",
                         "resnet50": "--batch-size 16 --input-shape 32x32x3 --steps 2 --warmup 2",
                         "vit_tiny": "--batch-size 32 --steps 3 --warmup 3",
                         "gpt_tiny": "--batch-size 16 --steps 3 --warmup 3",
                         "*": "--batch-size 16 --steps 2 --warmup 2"},
                 steps=(Step("breakdown", "--repeats {repeats} --threads {threads}", out="train"),)),
            Part("infer", cells=CAUSES_CELLS, variants=CAUSES_INFER_VARIANTS,
                 models={"cifar_cnn": "", "resnet50": "--input-shape 32x32x3", "vit_tiny": "", "gpt_tiny": "",
                         "*": ""},
                 steps=(Step("breakdown", "--phase infer --batch-size 1 --steps 20 --warmup 5 --repeats {repeats} "
                                          "--threads {threads}", out="infer"),)),
            Part("calls", cells=CAUSES_CELLS,
                 steps=(Step("calls", "--compiled --repeats 5 --batches 1,8 --threads {threads}", out="calls"),)),
        ),
        afterwards=("compare {out}/train", "compare {out}/infer", "compare {out}/calls"),
    ),
    Study(
        name="what-if", rounds=2, doc="docs/where_time_goes.md",
        summary="one Keras internal short-circuited (outputs proved unchanged): how much of keras[torch]'s gap closes",
        params={"what_if": "fast-bind", "checked": _what_if, "threads": "1", "repeats": "4"},
        parts=(
            Part("train", cells=("torch", "keras[torch]"), variants=WHAT_IF_VARIANTS,
                 models={"cifar_cnn": "--batch-size 64 --steps 3 --warmup 3", "*": "--batch-size 16 --steps 2 "
                                                                                 "--warmup 2"},
                 steps=(Step("breakdown", "--repeats {repeats} --threads {threads}", out="train/round-{round}"),)),
            Part("infer", cells=("torch", "keras[torch]"), variants=WHAT_IF_VARIANTS,
                 models={"cifar_cnn": "", "*": ""},
                 steps=(Step("breakdown", "--phase infer --batch-size 1 --steps 20 --warmup 5 --repeats {repeats} "
                                          "--threads {threads}", out="infer/round-{round}"),)),
        ),
        afterwards=("compare {out}/train/round-*", "compare {out}/infer/round-*"),
    ),
    Study(
        name="crosscheck", rounds=3, doc="docs/crosscheck.md",
        summary="twinbench's ratios against the plain hand-written loop, free and pinned (cifar_cnn, CPU)",
        params={"cpus": "0", "windows": "6", "steps": "20", "warmup": "5", "feed": "arrays", "allocator": "tuned",
                "paired_rounds": "6", "bench_parts": lambda p: f"--compute-repeats {p['windows']} --overhead-repeats 0",
                "cpus_dir": lambda p: str(p["cpus"]).replace(",", "_")},
        parts=(
            Part("", nesting=("variant", "cell", "model"),
                 models={"cifar_cnn": "--batch-size 64 --steps {steps}"},
                 variants=(Variant("free", dir="free"), Variant("pinned", "--cpus {cpus}", dir="{cpus_dir}")),
                 steps=(Step("throughput", "--warmup {warmup} --repeats {windows} {bench_parts} --feed {feed} "
                                           "--allocator {allocator}", out="bench/round-{round}-{dir}"),
                        Step("crosscheck", "--warmup {warmup} --repeats {windows} --allocator {allocator}",
                             out="crosscheck/round-{round}-{dir}"),
                        # The plain loop beside twinbench's runner in one process, window by window.
                        Step("crosscheck", "--paired --repeats {paired_rounds} --allocator {allocator}",
                             out="crosscheck/round-{round}-{dir}", enabled_by="paired_rounds"))),
        ),
        afterwards=("compare {out}/bench/round-*",
                    "tools/crosscheck/crosscheck.py --compare {out}/crosscheck {out}/bench --feed {feed} "
                    "--allocator {allocator}"),
    ),
    Study(
        name="crosscheck-alternated", rounds=6, doc="docs/crosscheck.md",
        summary="twinbench against the plain loop per implementation, their processes alternated A,B,B,A (cifar_cnn)",
        params={"windows": "4", "steps": "20", "warmup": "5", "threads": "1", "allocator": "tuned"},
        # Each cell's two processes next to each other (A,B in odd rounds, B,A in even ones: plan.make_plan reverses
        # every other pass); round N on both sides under round-N, which pairs them
        # (tools/crosscheck/crosscheck.py --alternated).
        parts=(Part("", nesting=("model", "cell", "variant"),
                    models={"cifar_cnn": "--batch-size 64 --steps {steps} --warmup {warmup} --repeats {windows} "
                                         "--threads {threads} --allocator {allocator}"},
                    steps=(Step("throughput", "--feed arrays --compute-repeats 0 --overhead-repeats 0",
                                out="bench/round-{round}"),
                           Step("crosscheck", out="crosscheck/round-{round}"))),),
        afterwards=("tools/crosscheck/crosscheck.py --alternated {out}/crosscheck {out}/bench --allocator {allocator}",),
    ),
    Study(
        name="definition-effect", rounds=2, doc="docs/definition_effect.md",
        summary="stock keras.applications vs the matched Keras definition vs the native twin",
        parts=(Part("", over="environment", cells=ENVIRONMENT_NAMES,
                    steps=(Step("definition-effect", out="round-{round}",
                                smallest="--families mobilenet_v2 --batch-size 4 --steps 1 --warmup 1 "
                                         "--repeats 2"),)),),
        afterwards=("definition-effect --out {out} --markdown",),
    ),
    Study(
        name="feed", rounds=3, doc="docs/methodology.md",
        summary="the whole step against its train step alone, native feed and plain arrays",
        params={"threads": "1"},
        parts=(Part("", nesting=("model", "variant", "cell"),
                    models={"cifar_cnn": "--batch-size 64 --steps 20 --repeats 6 --compute-repeats 6 --warmup 5",
                            "mnist_cnn": "--batch-size 64 --steps 20 --repeats 6 --compute-repeats 6 --warmup 5",
                            "*": "--batch-size 32 --steps 10 --repeats 6 --compute-repeats 6 --warmup 3"},
                    variants=(Variant("native", "--feed native"), Variant("arrays", "--feed arrays")),
                    steps=(Step("throughput", "--threads {threads} --overhead-repeats 0"),)),),
        afterwards=("compare {out}/round-*",),
    ),
    Study(
        name="gpu", rounds=2, python="python3", doc="docs/modes.md",
        summary="the lent GPU machine: decomposition, cross-check, profiler's cost, modes (torch and jax cells)",
        params={"batch": "64", "steps": "100", "repeats": "10", "cost_steps": "100", "cost_cycles": "10",
                "mode_rounds": "1"},
        parts=(
            Part("overhead", cells=("torch", "keras[torch]", "keras[jax]"),
                 models={"cifar_cnn": "--batch-size {batch} --steps {steps} --warmup 20 --repeats {repeats}",
                         "*": "--batch-size {batch} --steps {steps} --warmup 20 --repeats {repeats}"},
                 steps=(Step("throughput", "--overhead-repeats {repeats}", out="bench/round-{round}"),
                        Step("crosscheck", out="crosscheck/round-{round}"))),
            Part("profiler-cost", rounds=1, cells=("torch", "keras[torch]", "keras[jax]"),
                 models={"cifar_cnn": "--batch-size {batch}", "*": "--batch-size {batch}"},
                 steps=(Step("profiler-cost", "--steps {cost_steps} --cycles {cost_cycles}", out="profiler-cost"),)),
            Part("modes", rounds="mode_rounds", cells=("torch", "keras[torch]", "keras[jax]"),
                 models={"cifar_cnn": "--batch-size {batch} --steps {steps} --warmup 20 --repeats {repeats}",
                         "*": "--batch-size {batch} --steps {steps} --warmup 20 --repeats {repeats}"},
                 variants=(Variant("tf32", "--precision tf32"), Variant("bfloat16", "--precision mixed_bfloat16"),
                           Variant("jit-on", "--jit on")),
                 steps=(Step("throughput", "--overhead-repeats 0", out="modes/round-{round}"),)),
        ),
        afterwards=("compare {out}/bench/round-*", "compare {out}/bench/round-* {out}/modes/round-*",
                    "tools/crosscheck/crosscheck.py --compare {out}/crosscheck {out}/bench",
                    "profiler-cost --show {out}/profiler-cost"),
    ),
    Study(
        name="interleave", rounds=2, doc="docs/overhead.md",
        summary="two cells interleaved in one process against separate processes, in a budget of machine time",
        params={"budget_min": "10", "step_ms": "100", "start_s": "25", "steps": "20", "threads": "1",
                "allocator": "tuned", "irepeats": _interleaved_windows, "repeats": _separate_windows},
        parts=(
            Part("interleaved", over="environment", cells=("torch", "tensorflow"), rounds=1,
                 models={"cifar_cnn": "--batch-size 64 --steps {steps} --warmup 10 --threads {threads} "
                                      "--allocator {allocator}"},
                 steps=(Step("throughput", "--interleave --repeats {irepeats}", out="interleaved"),)),
            Part("separate", over="environment", cells=("torch", "tensorflow"),
                 models={"cifar_cnn": "--batch-size 64 --steps {steps} --warmup 10 --threads {threads} "
                                      "--allocator {allocator}"},
                 steps=(Step("throughput", "--no-interleave --repeats {repeats} --overhead-repeats 0",
                             out="separate/round-{round}"),)),
            # keras[jax], alone in its environment (never interleaved), once: the decomposition has its ratios too.
            Part("separate-jax", over="environment", cells=("jax",), rounds=1,
                 models={"cifar_cnn": "--batch-size 64 --steps {steps} --warmup 10 --threads {threads} "
                                      "--allocator {allocator}"},
                 steps=(Step("throughput", "--no-interleave --repeats {repeats} --overhead-repeats 0",
                             out="separate/round-{round}"),)),
        ),
        afterwards=("compare {out}/interleaved {out}/separate/round-*",),
    ),
    Study(
        name="layouts", rounds=4, doc="docs/methodology.md",
        summary="pinned to one core against free: throughput and a short training run of every cell",
        params={"cpus": "0"},
        parts=(Part("", nesting=("variant", "cell", "model"), variants=CPU_LAYOUTS,
                    models={"cifar_cnn": "", "*": ""},
                    steps=(Step("throughput", "--batch-size 64 --warmup 10 --steps 40 --repeats 4 "
                                              "--overhead-repeats 0 --threads 1", out="throughput/round-{round}"),
                           Step("train", "--dataset digits --epochs 3 --batch-size 64 --threads 1",
                                out="train/round-{round}"))),),
        afterwards=("compare {out}/throughput/round-*", "compare {out}/train/round-*"),
    ),
    Study(
        name="malloc", rounds=2, doc="docs/overhead.md",
        summary="what the C allocator costs each step: glibc as started against told to keep its memory",
        params={"windows": "6", "steps": "20", "warmup": "5"},
        parts=(Part("", variants=(Variant("default", dir="default"), Variant("tuned", env=KEEP_MEMORY, dir="tuned")),
                    models={"cifar_cnn": "--batch-size 64 --warmup {warmup} --steps {steps} --repeats {windows}"},
                    steps=(Step("throughput", "--compute-repeats 0 --overhead-repeats 0",
                                out="{dir}/round-{round}"),)),),
        afterwards=("compare {out}/default/round-*", "compare {out}/tuned/round-*"),
    ),
    Study(
        name="modes", rounds=2, doc="docs/modes.md",
        summary="execution modes on a CPU: compiled, mixed bfloat16 and the layouts, against eager float32",
        params={"threads": "1"},
        parts=(Part("", variants=MODES,
                    models={"cifar_cnn": "--batch-size 64 --steps 20 --repeats 4 --warmup 5",
                            "resnet50": "--batch-size 16 --input-shape 32x32x3 --steps 5 --repeats 4 --warmup 3",
                            "*": "--batch-size 32 --steps 10 --repeats 4 --warmup 3"},
                    steps=(Step("throughput", "--threads {threads} --overhead-repeats 0"),)),),
        afterwards=("compare {out}/round-*",),
    ),
    Study(
        name="natives-pair", rounds=1, doc="docs/overhead.md",
        summary="torch / tf_keras two ways in one budget: both native twins in one process (natives) and alternated",
        params={"budget_s": "180", "environments": "natives,torch,tensorflow", "model": "cifar_cnn", "batch": "64",
                "steps": "20", "warmup": "5", "windows": "6", "threads": "1", "allocator": "tuned",
                "pythons": _named_pythons},
        parts=(_alternated_part(),),
    ),
    Study(
        name="paper-table", rounds=1, doc="docs/paper_table.md",
        summary="the PyTorch paper's six models (Table 1) in all five implementations, CPU-sized",
        params={"threads": "1"},
        parts=(Part("", models={
            "alexnet": "--batch-size 16 --input-shape 63x63x3 --steps 3 --repeats 3 --warmup 2",
            "vgg19": "--batch-size 8 --input-shape 32x32x3 --steps 2 --repeats 3 --warmup 1",
            "resnet50": "--batch-size 16 --input-shape 32x32x3 --steps 3 --repeats 3 --warmup 2",
            "mobilenet_v2": "--batch-size 16 --input-shape 32x32x3 --steps 5 --repeats 3 --warmup 2",
            "gnmt": "--batch-size 32 --steps 3 --repeats 3 --warmup 2",
            "ncf": "--batch-size 1024 --input-shape 6040x3706 --steps 10 --repeats 3 --warmup 3",
            "*": "--batch-size 16 --steps 3 --repeats 3 --warmup 2"},
            steps=(Step("throughput", "--threads {threads} --overhead-repeats 0"),)),),
        afterwards=("compare {out}/round-*", "compare {out}/round-* --view paper-table"),
    ),
    Study(
        name="profiler-cost", rounds=2, doc="docs/profiler_cost.md",
        summary="the profiler's own cost: sampling-interval lines, the direct estimate, all threads busy",
        params={"cycles": "30", "direct_cycles": "100"},
        parts=(
            # The five cells at one thread, the sampler at 0.15 s and at 50, 15, 5 and 2 ms between: cost per sample.
            Part("lines", rounds=1, models={"cifar_cnn": "--batch-size 64 --steps 10 --warmup 10"},
                 steps=(Step("profiler-cost", "--cycles {cycles} --threads 1", out="one-thread"),)),
            # The production interval only, in --rounds rounds: the model-free estimate.
            Part("direct", models={"cifar_cnn": "--batch-size 64 --steps 10 --warmup 10"},
                 steps=(Step("profiler-cost", "--cycles {direct_cycles} --intervals 0.15 --threads 1",
                             out="direct/round-{round}"),)),
            # PyTorch with its own thread count: every core busy training, none idle for the sampler.
            Part("all-threads", rounds=1, cells=("torch",), models={"cifar_cnn": "--batch-size 64 --steps 10 "
                                                                                 "--warmup 10"},
                 steps=(Step("profiler-cost", "--cycles {cycles}", out="all-threads"),)),
        ),
        afterwards=("profiler-cost --show {out}/one-thread", "profiler-cost --show {out}/direct/round-*",
                    "profiler-cost --show {out}/all-threads",
                    "profiler-cost --show {out}/one-thread {out}/direct/round-*"),
    ),
    Study(
        name="replicas", rounds=1, doc="docs/cluster.md",
        summary="data-parallel scaling on one machine: 1 and 2 replicas, one core each, and 1 replica on two",
        params={"threads": "1", "threads2": lambda p: str(2 * int(p["threads"]))},
        parts=(Part("", cells=tuple(label for label in CELLS if label != "keras[torch]"),  # no data-parallel engine
                    models={"cifar_cnn": "--batch-size 64 --steps 10 --repeats 4 --warmup 3",
                            "mnist_cnn": "--batch-size 64 --steps 10 --repeats 4 --warmup 3"},
                    variants=(Variant("1-replica", "--replicas 1 --threads {threads}", dir="threads-{threads}"),
                              Variant("2-replicas", "--replicas 2 --threads {threads}", dir="threads-{threads}"),
                              Variant("1-replica-2x-threads", "--replicas 1 --threads {threads2}",
                                      dir="threads-{threads2}")),
                    steps=(Step("throughput", "--overhead-repeats 0", out="round-{round}/{dir}"),)),),
        afterwards=("compare {out}/round-*", "compare {out}/round-* --view replica-scaling"),
    ),
    Study(
        name="six-ratios", rounds=1, doc="docs/overhead.md",
        summary="all six decomposition ratios in one 10-minute budget: the environments' processes alternated A,B,B,A",
        params={"budget_s": "600", "environments": "torch,tensorflow,jax", "model": "cifar_cnn", "batch": "64",
                "steps": "20", "warmup": "5", "windows": "6", "threads": "1", "allocator": "tuned",
                "pythons": _named_pythons},
        parts=(_alternated_part(),),
    ),
    Study(
        name="suite", rounds=1, session="tests", doc="README.md",
        summary="the test suite's time in each environment (pytest, every test's duration)",
        parts=(Part("", over="environment", cells=ENVIRONMENT_NAMES,
                    steps=(Step("pytest", "-q -p no:logging -p no:cacheprovider --durations=30",
                                stdout="{env}.{round}.txt", smallest="-q -p no:cacheprovider tests/test_structure.py"),
                           )),),
    ),
    Study(
        name="trace", rounds=1, doc="docs/overhead.md",
        summary="where a step's time goes: every cell under its framework's own profiler",
        params={"batch": "64", "steps": "20", "threads": "1"},
        parts=(Part("", models={"cifar_cnn": "--batch-size {batch} --steps {steps} --warmup 5",
                                "*": "--batch-size {batch} --steps {steps} --warmup 5"},
                    steps=(Step("trace", "--threads {threads}"),)),),
        afterwards=("compare {out}/round-*",),
    ),
    Study(
        name="transformers", rounds=1, doc="docs/transformers.md",
        summary="ViT and GPT-2 (CPU-sized and full size), eager and compiled",
        params={"threads": "1", "jit_models": "vit_tiny,gpt_tiny"},  # compiling GPT-2 small takes minutes a run
        parts=(Part("", variants=(Variant("eager"), Variant("jit-on", "--jit on", models="{jit_models}"),
                                  Variant("jit-off", "--jit off", labels=("keras[jax]",), models="{jit_models}")),
                    models={"vit_tiny": "--batch-size 32 --steps 10 --repeats 4 --warmup 3",
                            "gpt_tiny": "--batch-size 16 --steps 10 --repeats 4 --warmup 3",
                            "vit_b_16": "--batch-size 4 --input-shape 32x32x3 --steps 3 --repeats 4 --warmup 2",
                            "gpt2": "--batch-size 2 --input-shape 64 --steps 3 --repeats 4 --warmup 2",
                            "*": "--batch-size 8 --steps 5 --repeats 4 --warmup 2"},
                    steps=(Step("throughput", "--threads {threads} --overhead-repeats 0"),)),),
        afterwards=("compare {out}/round-*",),
    ),
), key=lambda study: study.name)}  # listed by name
