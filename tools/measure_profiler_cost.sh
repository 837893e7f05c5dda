#!/usr/bin/env bash
# The profiler's own cost in docs/measurements.md: `python -m twinbench profiler-cost` (bench/studies/profiler_cost.py),
# cifar_cnn, batch 64, windows of 10 steps, the sampler off in every other window; each run its own process.
#
#   lines:       the five implementations, one CPU thread each, the sampler on at 0.15 s (production), 50, 15,
#                5 and 2 ms in the windows between: the cost per sample, amplified (CYCLES cycles).
#   direct:      the five implementations again, the sampler at 0.15 s only, DIRECT_CYCLES windows each, in
#                DIRECT_ROUNDS interleaved rounds: the model-free estimate at the production interval
#                (`--show` pools the experiments of each implementation, then all of them).
#   all-threads: PyTorch with the framework's own thread count (every core busy with training, so the sampler
#                thread has no idle core to run on), as in `lines`.
#
# Usage: tools/measure_profiler_cost.sh OUT_DIR [CYCLES [DIRECT_CYCLES [DIRECT_ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]]]
# PARTS="lines direct all-threads" (the default) chooses the parts; a record that exists is not measured
# again, so a run that stopped can be resumed with the same command. The three pythons default to the
# interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_profiler_cost.sh OUT_DIR [CYCLES [DIRECT_CYCLES [DIRECT_ROUNDS [PYTHONS...]]]]}
cycles=${2:-30}
direct_cycles=${3:-100}
direct_rounds=${4:-2}
py_torch=${5:-.nox/throughput-torch/bin/python}
py_tf=${6:-.nox/throughput-tensorflow/bin/python}
py_jax=${7:-.nox/throughput-jax/bin/python}
parts=${PARTS:-lines direct all-threads}
common=(--model cifar_cnn --batch-size 64 --steps 10 --warmup 10)
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
load() { cut -d' ' -f1-3 /proc/loadavg; }
done_already() { [[ -f "$1/cifar_cnn__$2__$3__synthetic__profiler_cost.json" ]] && echo "== $1: $2 [$3] done already"; }
if [[ " $parts " == *" lines "* ]]; then
    for cell in "${cells[@]}"; do
        read -r env impl backend _ <<< "$cell"
        python=$(python_for "$env")
        done_already "$out/one-thread" "$impl" "$backend" && continue
        echo "== profiler cost, lines: $impl [$backend], one thread, load average $(load)"
        KERAS_BACKEND=$backend "$python" -m twinbench profiler-cost --impl "$impl" --backend "$backend" "${common[@]}" \
            --cycles "$cycles" --threads 1 --out "$out/one-thread"
    done
fi
if [[ " $parts " == *" direct "* ]]; then
    for round in $(seq 1 "$direct_rounds"); do
        for cell in "${cells[@]}"; do
            read -r env impl backend _ <<< "$cell"
            python=$(python_for "$env")
            done_already "$out/direct/round-$round" "$impl" "$backend" && continue
            echo "== profiler cost, direct, round $round: $impl [$backend], one thread, load average $(load)"
            KERAS_BACKEND=$backend "$python" -m twinbench profiler-cost --impl "$impl" --backend "$backend" "${common[@]}" \
                --cycles "$direct_cycles" --intervals 0.15 --threads 1 --out "$out/direct/round-$round"
        done
    done
fi
if [[ " $parts " == *" all-threads "* ]] && ! done_already "$out/all-threads" torch torch; then
    echo "== profiler cost, lines: torch, the framework's own thread count, load average $(load)"
    KERAS_BACKEND=torch "$py_torch" -m twinbench profiler-cost --impl torch "${common[@]}" --cycles "$cycles" \
        --out "$out/all-threads"
fi
echo
[[ -d "$out/one-thread" ]] && { echo "## lines, one thread"; "$py_torch" -m twinbench profiler-cost --show "$out/one-thread"; }
[[ -d "$out/direct" ]] && { echo "## direct"; "$py_torch" -m twinbench profiler-cost --show "$out"/direct/round-*; }
[[ -d "$out/all-threads" ]] && { echo "## lines, all threads"; "$py_torch" -m twinbench profiler-cost --show "$out/all-threads"; }
[[ -d "$out/one-thread" && -d "$out/direct" ]] && {
    echo "## the direct estimate over every experiment at one thread"
    "$py_torch" -m twinbench profiler-cost --show "$out/one-thread" "$out"/direct/round-* | grep "pooled, measured directly"; }
true
