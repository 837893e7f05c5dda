#!/usr/bin/env bash
# Throughput and the overhead decomposition of the Transformers on a CPU: for each model, every implementation eager
# (the default mode) and, for the CPU-sized configurations, compiled (--jit on; keras[jax], which compiles by default,
# also --jit off), in ROUNDS interleaved rounds, every run its own process. The full-size configurations run eager only
# unless FULL_JIT=1 (compiling GPT-2 small takes minutes per run on 2 cores). `python -m twinbench compare` pools the rounds and prints, per mode, the
# table and the decomposition. Roughly 10-15 minutes per round on 2 cores with the defaults (vit_tiny at batch 32, and
# vit_b_16 on 32x32 images, 4 patches + the class token through all 12 blocks, at batch 4; gpt_tiny at batch 16 over
# its 64 positions; gpt2 at batch 2 over 64 of its 1,024 positions), most of it process start-up and compilation (--jit on: torch.compile, XLA), which the records report apart from the steady state.
#
# Usage: tools/measure_transformers.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# MODELS (default "vit_tiny gpt_tiny vit_b_16 gpt2") and THREADS (default 1) override the defaults; the three pythons default to
# the interpreters of the nox environments (nox -s throughput --install-only creates them). Another model joins
# by a line in model_args and a name in MODELS.
set -euo pipefail
out=${1:?usage: tools/measure_transformers.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-1}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# Per model: the options of its runs (batch, input, steps per window, windows).
model_args() {
    case $1 in
        vit_tiny) echo "--batch-size 32 --steps 10 --repeats 4 --warmup 3" ;;
        vit_b_16) echo "--batch-size 4 --input-shape 32x32x3 --steps 3 --repeats 4 --warmup 2" ;;
        gpt_tiny) echo "--batch-size 16 --steps 10 --repeats 4 --warmup 3" ;;
        gpt2) echo "--batch-size 2 --input-shape 64 --steps 3 --repeats 4 --warmup 2" ;;
        *) echo "--batch-size 8 --steps 5 --repeats 4 --warmup 2" ;;
    esac
}
# The modes each cell runs in (by model and label): eager and compiled, plus keras[jax] without its default
# compilation; the full-size models eager only unless FULL_JIT=1.
modes_for() {
    echo "-"
    case $1 in vit_b_16|gpt2) [[ ${FULL_JIT:-0} == 1 ]] || return 0 ;; esac
    echo "--jit on"
    case $2 in
        "keras[jax]") echo "--jit off" ;;
    esac
}
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for model in ${MODELS:-vit_tiny gpt_tiny vit_b_16 gpt2}; do
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
            done < <(modes_for "$model" "$label")
        done
    done
done
"$py_torch" -m twinbench compare "$out"/round-*
