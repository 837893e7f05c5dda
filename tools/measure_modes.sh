#!/usr/bin/env bash
# The execution-mode measurements of docs/modes.md on a CPU: for each model, every implementation eager and
# compiled (--jit on; keras[jax], which compiles by default, also --jit off), in float32 and mixed_bfloat16, and the
# layouts (keras[torch] --data-format channels_first, torch --memory-format channels_last), in ROUNDS interleaved
# rounds, every run its own process. `python -m twinbench compare` pools the rounds and prints, per mode, the overhead
# decomposition and the mode effects (compile, precision, layout) with their CIs.
#
# Usage: tools/measure_modes.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# MODELS (default "cifar_cnn resnet50") and THREADS (default 1) override the defaults; the three pythons default to
# the interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_modes.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-2}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# Per model: the options of its runs (batch, input, steps per window, windows).
model_args() {
    case $1 in
        cifar_cnn) echo "--batch-size 64 --steps 20 --repeats 4 --warmup 5" ;;
        resnet50) echo "--batch-size 16 --input-shape 32x32x3 --steps 5 --repeats 4 --warmup 3" ;;
        *) echo "--batch-size 32 --steps 10 --repeats 4 --warmup 3" ;;
    esac
}
# The modes each cell runs in, by label: every implementation in four, plus the cells that have more.
modes_for() {
    echo "-"; echo "--jit on"; echo "--precision mixed_bfloat16"
    case $1 in
        "keras[jax]") echo "--jit off" ;;
        "keras[torch]") echo "--data-format channels_first" ;;
        torch) echo "--memory-format channels_last" ;;
    esac
}
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for model in ${MODELS:-cifar_cnn resnet50}; do
        read -r -a margs <<< "$(model_args "$model")"
        for cell in "${cells[@]}"; do
            read -r env impl backend label <<< "$cell"
            python=$(python_for "$env")
            while read -r mode; do
                [[ $mode == - ]] && mode=""  # the default mode
                read -r -a mode_args <<< "$mode"
                echo "== round $round: $model $label $mode, load average $(cut -d' ' -f1-3 /proc/loadavg)"
                # A mode that fails (e.g. a compiler error) is a failed record; the rounds go on.
                KERAS_BACKEND=$backend "$python" -m twinbench throughput --model "$model" --impl "$impl" --backend "$backend" \
                    "${margs[@]}" "${mode_args[@]}" --threads "${THREADS:-1}" --overhead-repeats 0 \
                    --out "$out/round-$round" || echo "   (failed: recorded)"
            done < <(modes_for "$label")
        done
    done
done
"$py_torch" -m twinbench compare "$out"/round-*
