#!/usr/bin/env bash
# What the C allocator costs each implementation's step: `twinbench throughput` of cifar_cnn (batch 64, 6 windows of 20
# steps) for every cell, each in a fresh process, with glibc's malloc as the process starts (its default: a large
# buffer is mmapped or not depending on the process's history, and freed mmapped memory goes back to the OS, so the
# next step faults fresh pages in again) and with it told to keep its memory (MALLOC_MMAP_THRESHOLD_=32 MiB, the most
# glibc takes, MALLOC_TRIM_THRESHOLD_ = 64 GiB: setting either alone does not stop PyTorch's faults, and
# MALLOC_TOP_PAD_ = 512 MiB, which cuts TensorFlow's; JAX's stay). The two variants
# alternate, cell by cell, in ROUNDS rounds; records say which (environment.env) and count page faults per step
# (`compare`'s "page faults/step"). Then `compare` of each variant. Run it on an idle machine.
#
# About 3.5 minutes a round with WINDOWS=4 on an idle 2-core CPU (2026-12-02, docs/overhead.md); more with the default 6.
#
# Usage: tools/measure_malloc.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# The three pythons default to the interpreters of the nox environments (nox -s throughput --install-only creates
# them). WINDOWS (6), STEPS (20) and WARMUP (5) change the window layout.
set -euo pipefail
out=${1:?usage: tools/measure_malloc.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-2}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
common=(--model cifar_cnn --batch-size 64 --warmup "${WARMUP:-5}" --steps "${STEPS:-20}" --repeats "${WINDOWS:-6}"
        --compute-repeats 0 --overhead-repeats 0)
tuned=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=536870912)
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for cell in "${cells[@]}"; do
        read -r env impl backend label <<< "$cell"
        python=$(python_for "$env")
        for variant in default tuned; do
            settings=(); [[ $variant == tuned ]] && settings=("${tuned[@]}")
            echo "== round $round, $label, malloc $variant, load average $(cut -d' ' -f1-3 /proc/loadavg)"
            env "${settings[@]}" KERAS_BACKEND="$backend" "$python" -m twinbench throughput --impl "$impl" \
                --backend "$backend" "${common[@]}" --out "$out/$variant/round-$round" || echo "   (failed: recorded)"
        done
    done
done
for variant in default tuned; do
    echo; echo "== malloc $variant"
    "$py_torch" -m twinbench compare "$out/$variant"/round-*
done
