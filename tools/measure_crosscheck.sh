#!/usr/bin/env bash
# The plain-loop cross-check (tools/crosscheck.py, docs/measurements.md "Cross-checked by a plain loop"): cifar_cnn,
# batch 64, in ROUNDS rounds; in each round, for each CPU layout (free: the process may use every CPU; pinned: one
# core, --cpus 0), every implementation twice, interleaved: twinbench's `twinbench throughput` (whole windows and
# compute-only windows) and the plain hand-written loop (step-only and whole-loop from one run), each in its own
# process, with the same warm-up, steps per window and windows. twinbench feeds plain arrays (--feed arrays), as the
# plain loop does: with its native feed (Sequence/PyDataset) TensorFlow's steps run twice as long in the whole process
# on this CPU (tools/tf_generator_cost.py, docs/overhead.md). Then both compares: the six ratios of
# bench/results/decompose.py, plain step-only vs twinbench compute-only and plain whole-loop vs twinbench whole, per
# layout; each prints "NO" where a ratio is off by more than 5%.
#
# About 10-12 minutes a round on an idle 2-core CPU (20 processes: 10 per layout; the pinned ones run slower).
#
# Usage: tools/measure_crosscheck.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# The three pythons default to the interpreters of the nox environments (nox -s throughput --install-only creates
# them). Overrides: PINNED (default 0: the CPUs of the pinned layout), WINDOWS (6), STEPS (20), WARMUP (5), and
# BENCH_PARTS, twinbench's options for its compute-only windows (default "--compute-repeats $WINDOWS
# --overhead-repeats 0"), FEED (arrays; native measures and compares twinbench's native feed instead) and
# PAIRED_ROUNDS (6): rounds of `crosscheck.py --paired` per implementation and layout (the plain loop and twinbench's
# runner in one process, window by window); 0 leaves it out. With them a round took 22 minutes instead of 11 (2026-12-02).
# ALLOCATOR (default tuned): --allocator of every process, twinbench's and the plain loop's (backends/allocator.py:
# glibc keeps the memory it took, so neither side's steps pay page faults that depend on its allocation pattern and
# on the process; system: the allocator as started, what the rounds before 2026-12-02 evening measured).
set -euo pipefail
out=${1:?usage: tools/measure_crosscheck.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-3}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
windows=${WINDOWS:-6}
feed=${FEED:-arrays}
allocator=${ALLOCATOR:-tuned}
paired_rounds=${PAIRED_ROUNDS:-6}
read -r -a bench_parts <<< "${BENCH_PARTS:---compute-repeats $windows --overhead-repeats 0}"
common=(--model cifar_cnn --batch-size 64 --warmup "${WARMUP:-5}" --steps "${STEPS:-20}" --repeats "$windows")
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for layout in free "${PINNED:-0}"; do
        pin=(); [[ $layout == free ]] || pin=(--cpus "$layout")
        dir=round-$round-${layout//,/_}  # a directory per layout: no record or result of one replaces another's
        for cell in "${cells[@]}"; do
            read -r env impl backend label <<< "$cell"
            python=$(python_for "$env")
            echo "== round $round, cpus $layout: $label, load average $(cut -d' ' -f1-3 /proc/loadavg)"
            # A failed run is a failed record (twinbench) or a missing result (plain loop); the rounds go on.
            KERAS_BACKEND=$backend "$python" -m twinbench throughput --impl "$impl" --backend "$backend" "${common[@]}" \
                "${bench_parts[@]}" --feed "$feed" --allocator "$allocator" "${pin[@]}" --out "$out/bench/$dir" \
                || echo "   (twinbench failed)"
            KERAS_BACKEND=$backend "$python" tools/crosscheck.py --impl "$impl" "${common[@]}" "${pin[@]}" \
                --allocator "$allocator" --out "$out/crosscheck/$dir" || echo "   (plain loop failed)"
            # The plain loop beside twinbench's runner in one process, window by window: no process-to-process spread.
            (( paired_rounds == 0 )) || KERAS_BACKEND=$backend "$python" tools/crosscheck.py --impl "$impl" --paired \
                --model cifar_cnn --batch-size 64 --steps "${STEPS:-20}" --repeats "$paired_rounds" "${pin[@]}" \
                --allocator "$allocator" --out "$out/crosscheck/$dir" || echo "   (paired run failed)"
        done
    done
done
"$py_torch" -m twinbench compare "$out"/bench/round-*
echo; echo "Cross-check: the plain loop against twinbench (exit 1 when a ratio is off by more than 5%)"
"$py_torch" tools/crosscheck.py --compare "$out/crosscheck" "$out/bench" --feed "$feed" --allocator "$allocator"
