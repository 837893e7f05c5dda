#!/usr/bin/env bash
# The profiler's own cost in docs/measurements.md: `python -m bench profiler-cost` (bench/profiler_cost.py),
# cifar_cnn, batch 64, windows of 10 steps, the sampler off in every other window; each run its own process.
#
#   lines:       the five implementations, one CPU thread each, the sampler on at 0.15 s (production), 50, 15,
#                5 and 2 ms in the windows between: the cost per sample, amplified (CYCLES cycles).
#   direct:      the five implementations again, the sampler at 0.15 s only, DIRECT_CYCLES windows each: the
#                model-free estimate at the production interval (`--show` pools the five).
#   all-threads: PyTorch with the framework's own thread count (every core busy with training, so the sampler
#                thread has no idle core to run on), as in `lines`.
#
# Usage: tools/measure_profiler_cost.sh OUT_DIR [CYCLES [DIRECT_CYCLES [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]]
# PARTS="lines direct all-threads" (the default) chooses the parts. The three pythons default to the
# interpreters of the nox environments (nox -s bench_cells --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_profiler_cost.sh OUT_DIR [CYCLES [DIRECT_CYCLES [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]]}
cycles=${2:-30}
direct_cycles=${3:-100}
py_torch=${4:-.nox/bench_cells-torch/bin/python}
py_tf=${5:-.nox/bench_cells-tensorflow/bin/python}
py_jax=${6:-.nox/bench_cells-jax/bin/python}
parts=${PARTS:-lines direct all-threads}
common=(--model cifar_cnn --batch-size 64 --steps 10 --warmup 10)
cells=("torch torch $py_torch" "keras torch $py_torch" "tf_keras tensorflow $py_tf" "keras tensorflow $py_tf"
       "keras jax $py_jax")
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
load() { cut -d' ' -f1-3 /proc/loadavg; }
if [[ " $parts " == *" lines "* ]]; then
    for cell in "${cells[@]}"; do
        read -r impl backend python <<< "$cell"
        echo "== profiler cost, lines: $impl [$backend], one thread, load average $(load)"
        KERAS_BACKEND=$backend "$python" -m bench profiler-cost --impl "$impl" --backend "$backend" "${common[@]}" \
            --cycles "$cycles" --threads 1 --out "$out/one-thread"
    done
fi
if [[ " $parts " == *" direct "* ]]; then
    for cell in "${cells[@]}"; do
        read -r impl backend python <<< "$cell"
        echo "== profiler cost, direct: $impl [$backend], one thread, load average $(load)"
        KERAS_BACKEND=$backend "$python" -m bench profiler-cost --impl "$impl" --backend "$backend" "${common[@]}" \
            --cycles "$direct_cycles" --intervals 0.15 --threads 1 --out "$out/direct"
    done
fi
if [[ " $parts " == *" all-threads "* ]]; then
    echo "== profiler cost, lines: torch, the framework's own thread count, load average $(load)"
    KERAS_BACKEND=torch "$py_torch" -m bench profiler-cost --impl torch "${common[@]}" --cycles "$cycles" \
        --out "$out/all-threads"
fi
echo
for part in one-thread direct all-threads; do
    if [[ -d "$out/$part" ]]; then echo "## $part"; "$py_torch" -m bench profiler-cost --show "$out/$part"; fi
done
