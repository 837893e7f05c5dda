#!/usr/bin/env bash
# Pinned vs free: the throughput benchmark and a short training run of every implementation in two CPU layouts,
# every run its own process, in ROUNDS interleaved rounds:
#   pinned  --cpus 0 --threads 1: one core for the whole process (framework pools, input pipeline, Keras' callback
#           pool and the profiler's sampler all share it);
#   free    --threads 1 without --cpus: the same pools, but the process may use every core it was given, so helper
#           threads (sampler, callback pool, tf.data, Python) run beside the compute thread.
# Pinned and free runs are different cells (bench.cell AXES "cpus"), so compare shows each layout's rows and ratios
# side by side and never pools them; `record["threads"]` says what ran in each (pools, threads alive, other busy
# processes), and the training runs break the time between epochs into its parts.
#
# Usage: tools/measure_layouts.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# The three pythons default to the interpreters of the nox environments (nox -s throughput --install-only creates
# them). MODEL (default cifar_cnn) and CPUS (the pinned layout, default 0) may be set in the environment.
set -euo pipefail
out=${1:?usage: tools/measure_layouts.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-4}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
model=${MODEL:-cifar_cnn}
pinned=${CPUS:-0}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for layout in pinned free; do
        cpus=(); [[ $layout == pinned ]] && cpus=(--cpus "$pinned")
        for cell in "${cells[@]}"; do
            read -r env impl backend _ <<< "$cell"
            python=$(python_for "$env")
            echo "== round $round, $layout: $impl [$backend], load average $(cut -d' ' -f1-3 /proc/loadavg)"
            KERAS_BACKEND=$backend "$python" -m twinbench throughput --impl "$impl" --backend "$backend" --model "$model" \
                --batch-size 64 --warmup 10 --steps 40 --repeats 4 --overhead-repeats 0 --threads 1 "${cpus[@]}" \
                --out "$out/throughput/round-$round" || echo "   (failed: recorded)"
            KERAS_BACKEND=$backend "$python" -m twinbench train --impl "$impl" --backend "$backend" --model "$model" \
                --dataset digits --epochs 3 --batch-size 64 --threads 1 "${cpus[@]}" \
                --out "$out/train/round-$round" || echo "   (failed: recorded)"
        done
    done
done
"$py_torch" -m twinbench compare "$out"/throughput/round-*
"$py_torch" -m twinbench compare "$out"/train/round-*
