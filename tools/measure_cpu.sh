#!/usr/bin/env bash
# The CPU measurements in docs/measurements.md: twinbench's throughput benchmark (python -m bench bench)
# and the hand-written cross-check (tools/crosscheck.py: the PyTorch loop; for Keras one fit call timed
# by a stopwatch callback), back to back for each implementation, in ROUNDS interleaved rounds over all five implementations. Each run
# is its own process; `python -m bench compare` and `tools/crosscheck.py --compare` pool the rounds. On
# a shared machine this spreads the background load's drift over every implementation instead of
# landing on one of them.
#
# Usage: tools/measure_cpu.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# The three pythons default to the interpreters of the nox environments (nox -s bench creates them).
set -euo pipefail
out=${1:?usage: tools/measure_cpu.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-4}
py_torch=${3:-.nox/bench_cells-torch/bin/python}
py_tf=${4:-.nox/bench_cells-tensorflow/bin/python}
py_jax=${5:-.nox/bench_cells-jax/bin/python}
common=(--model cifar_cnn --batch-size 64 --steps 50 --warmup 10 --repeats 4 --threads 1)
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for cell in "torch torch $py_torch" "keras torch $py_torch" "tf_keras tensorflow $py_tf" \
                "keras tensorflow $py_tf" "keras jax $py_jax"; do
        read -r impl backend python <<< "$cell"
        echo "== round $round: $impl [$backend], load average $(cut -d' ' -f1-3 /proc/loadavg)"
        KERAS_BACKEND=$backend "$python" -m bench bench --impl "$impl" --backend "$backend" "${common[@]}" \
            --overhead-repeats 4 --out "$out/bench/round-$round"
        KERAS_BACKEND=$backend "$python" tools/crosscheck.py --impl "$impl" "${common[@]}" \
            --out "$out/crosscheck/round-$round"
    done
done
python3 -m bench compare "$out"/bench/round-*
echo; echo "Cross-check with the hand-written timing:"
python3 tools/crosscheck.py --compare "$out/crosscheck" "$out/bench" || true
