#!/usr/bin/env bash
# Feed vs compute (issue 19, part 1) on a CPU: every implementation's whole step (its own feed and train step) against
# its train step alone on batches already on the device (compute windows, interleaved ABBA with the whole windows in
# the same process), with the native feed and with plain arrays (--feed arrays), in ROUNDS interleaved rounds, every
# run its own process. `python -m twinbench compare` pools the rounds and prints, per cell, the whole step, compute and
# feed (ms, median [IQR], the feed's 95% CI) and the decomposition for the whole step and for compute.
#
# Usage: tools/measure_feed.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# MODELS (default "cifar_cnn mnist_cnn") and THREADS (default 1) override the defaults; the three pythons default to
# the interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_feed.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-3}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# Per model: the options of its runs (batch, input, steps per window, windows of each kind).
model_args() {
    case $1 in
        cifar_cnn) echo "--batch-size 64 --steps 20 --repeats 6 --compute-repeats 6 --warmup 5" ;;
        mnist_cnn) echo "--batch-size 64 --steps 20 --repeats 6 --compute-repeats 6 --warmup 5" ;;
        *) echo "--batch-size 32 --steps 10 --repeats 6 --compute-repeats 6 --warmup 3" ;;
    esac
}
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for model in ${MODELS:-cifar_cnn mnist_cnn}; do
        read -r -a margs <<< "$(model_args "$model")"
        for feed in native arrays; do
            for cell in "${cells[@]}"; do
                read -r env impl backend label <<< "$cell"
                python=$(python_for "$env")
                echo "== round $round: $model $label --feed $feed, load average $(cut -d' ' -f1-3 /proc/loadavg)"
                KERAS_BACKEND=$backend "$python" -m twinbench throughput --model "$model" --impl "$impl" --backend "$backend" \
                    "${margs[@]}" --feed "$feed" --threads "${THREADS:-1}" --overhead-repeats 0 \
                    --out "$out/round-$round" || echo "   (failed: recorded)"
            done
        done
    done
done
"$py_torch" -m twinbench compare "$out"/round-*
