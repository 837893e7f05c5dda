#!/usr/bin/env bash
# The test suite's time budget (15 minutes for the three environments together, warm, on a 2-core CPU): pytest in
# each environment, one after the other, every test's duration recorded, as `nox -s tests` runs it. Run it on an
# idle machine; the wall time per environment is the last line of OUT_DIR/ENV.ROUND.txt, the slowest tests precede it.
#
# Usage: tools/measure_suite.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# The three pythons default to the interpreters of the nox environments (nox -s tests --install-only creates them);
# ROUNDS > 1 repeats the three environments (round 1 warms the caches; the budget is for a warm suite).
set -euo pipefail
out=${1:?usage: tools/measure_suite.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-1}
py_torch=${3:-.nox/tests-torch/bin/python}
py_tf=${4:-.nox/tests-tensorflow/bin/python}
py_jax=${5:-.nox/tests-jax/bin/python}
mkdir -p "$out"
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for env in torch tensorflow jax; do
        case $env in torch) py=$py_torch ;; tensorflow) py=$py_tf ;; jax) py=$py_jax ;; esac
        start=$(date +%s)
        KERAS_BACKEND=$env "$py" -m pytest -q -p no:logging -p no:cacheprovider --durations=30 \
            > "$out/$env.$round.txt" 2>&1 || echo "pytest failed in $env (see $out/$env.$round.txt)"
        echo "$env: $(( $(date +%s) - start )) s wall" | tee -a "$out/$env.$round.txt"
    done
done
