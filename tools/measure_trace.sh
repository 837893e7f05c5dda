#!/usr/bin/env bash
# The op-level breakdown of README "Where a step's time goes": every cell of each model traced under its framework's
# own profiler (python -m twinbench trace), one process per cell, ROUNDS times; then `python -m twinbench compare` prints each
# cell's table (conv/matmul, layout, optimizer, other ops, remainder in ms per step) and, for each ratio of the
# overhead decomposition, where the numerator's extra milliseconds lie. Run it on an idle machine.
#
# Usage: tools/measure_trace.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# MODELS (default "cifar_cnn"), BATCH (default 64), STEPS (traced steps, default 20) and THREADS (default 1) override
# the defaults; the three pythons default to the interpreters of the nox environments.
set -euo pipefail
out=${1:?usage: tools/measure_trace.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-1}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for model in ${MODELS:-cifar_cnn}; do
        for cell in "${cells[@]}"; do
            read -r env impl backend label <<< "$cell"
            echo "== round $round: $model $label, load average $(cut -d' ' -f1-3 /proc/loadavg)"
            # A cell that fails is a failed record; the others go on.
            KERAS_BACKEND=$backend "$(python_for "$env")" -m twinbench trace --model "$model" --impl "$impl" \
                --backend "$backend" --batch-size "${BATCH:-64}" --steps "${STEPS:-20}" --warmup 5 \
                --threads "${THREADS:-1}" --out "$out/round-$round" || echo "   (failed: recorded)"
        done
    done
done
"$py_torch" -m twinbench compare "$out"/round-*
