#!/usr/bin/env bash
# The CPU measurements in docs/measurements.md, in two parts, every run its own process:
#
# 1. The overhead decomposition and its cross-check: twinbench's throughput benchmark (python -m twinbench
#    bench) and the hand-written timing loop (tools/crosscheck.py: the PyTorch loop; for Keras one fit call
#    timed by a stopwatch callback), back to back for each implementation, in ROUNDS interleaved rounds over
#    all five implementations. `python -m twinbench compare` and `tools/crosscheck.py --compare` pool the rounds.
#    On a shared machine this spreads the background load's drift over every implementation instead of
#    landing on one of them; the spread between processes is part of the confidence intervals.
# 2. The profiler's own cost: one benchmark per implementation with many short windows, the sampler on and
#    off in ABBA order (paired estimate), so a slow drift cancels within each pair.
#
# Usage: tools/measure_cpu.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# The three pythons default to the interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_cpu.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-6}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
common=(--model cifar_cnn --batch-size 64 --warmup 10 --threads 1)
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for cell in "${cells[@]}"; do
        read -r env impl backend _ <<< "$cell"
        python=$(python_for "$env")
        echo "== round $round: $impl [$backend], load average $(cut -d' ' -f1-3 /proc/loadavg)"
        KERAS_BACKEND=$backend "$python" -m twinbench throughput --impl "$impl" --backend "$backend" "${common[@]}" \
            --steps 40 --repeats 4 --overhead-repeats 0 --out "$out/bench/round-$round"
        KERAS_BACKEND=$backend "$python" tools/crosscheck.py --impl "$impl" "${common[@]}" \
            --steps 40 --repeats 4 --out "$out/crosscheck/round-$round"
    done
done
for cell in "${cells[@]}"; do
    read -r env impl backend _ <<< "$cell"
    python=$(python_for "$env")
    echo "== profiler cost: $impl [$backend], load average $(cut -d' ' -f1-3 /proc/loadavg)"
    KERAS_BACKEND=$backend "$python" -m twinbench throughput --impl "$impl" --backend "$backend" "${common[@]}" \
        --steps 20 --repeats 12 --overhead-repeats 12 --out "$out/profiler-cost"
done
"$py_torch" -m twinbench compare "$out"/bench/round-*
echo; echo "Cross-check with the hand-written timing:"
"$py_torch" tools/crosscheck.py --compare "$out/crosscheck" "$out/bench" || true
echo; echo "The profiler's own cost:"
"$py_torch" -m twinbench compare "$out/profiler-cost"
