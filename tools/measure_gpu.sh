#!/usr/bin/env bash
# The GPU measurements of the measurement issue: torch, keras[torch] and keras[jax] (TensorFlow runs on
# CPU only where we have GPUs), twinbench's benchmark and the hand-written cross-check back to back, in
# ROUNDS interleaved rounds, each run its own process; then the profiler's cost (twinbench profiler-cost, windows
# of COST_STEPS steps, COST_CYCLES cycles), the decomposition and the cross-check.
#
# Made for the lent GPU machine, which has PyTorch (CUDA), JAX (CUDA) and nvidia-ml-py but no keras and no
# nox: tools/device_wheels.sh (run here, with network) puts the keras, namex and optree wheels into .whl/,
# which this script installs into a scratch directory when keras is missing. One device call, e.g.
#
#     bash tools/measure_gpu.sh "$OUT/gpu" 2        (carry: [".whl"]; not yet timed on a GPU: leave room for a rerun)
#
# Then the execution modes (docs/modes.md), each cell in every mode of MODES (default: TF32 on, mixed bfloat16,
# compiled), MODE_ROUNDS interleaved rounds (default 1), into "$OUT/modes/round-N"; `compare` prints their
# decomposition per mode and the mode effects against the float32 eager runs of the first part.
#
# Usage: tools/measure_gpu.sh OUT_DIR [ROUNDS [PYTHON]]; MODEL, BATCH, STEPS, REPEATS, COST_STEPS, COST_CYCLES,
# MODES (e.g. "--precision tf32;--jit on"), MODE_ROUNDS override the defaults.
set -euo pipefail
out=${1:?usage: tools/measure_gpu.sh OUT_DIR [ROUNDS [PYTHON]]}
rounds=${2:-2}
python=${3:-python3}
model=${MODEL:-cifar_cnn}
common=(--model "$model" --batch-size "${BATCH:-64}" --steps "${STEPS:-100}" --warmup 20 --repeats "${REPEATS:-10}")
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
if ! KERAS_BACKEND=torch "$python" -c "import keras" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "keras is not installed and .whl/ has no wheels: run tools/device_wheels.sh"; exit 2; }
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
mkdir -p "$out"
# The cells of the torch and jax environments (TensorFlow has no GPU here), one a line, from backends/environments.py.
mapfile -t cells < <(KERAS_BACKEND=torch "$python" -m twinbench cells --env torch --env jax)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  KERAS_BACKEND=torch "$python" -c "import sys, torch, jax, keras; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'jax', jax.__version__, 'keras', keras.__version__, 'devices', jax.devices())"
} | tee "$out/machine.txt"
for round in $(seq 1 "$rounds"); do
    for cell in "${cells[@]}"; do
        read -r _ impl backend _ <<< "$cell"
        echo "== round $round: $impl [$backend]"
        KERAS_BACKEND=$backend "$python" -m twinbench throughput --impl "$impl" --backend "$backend" "${common[@]}" \
            --overhead-repeats "${REPEATS:-10}" --out "$out/bench/round-$round"
        KERAS_BACKEND=$backend "$python" tools/crosscheck.py --impl "$impl" "${common[@]}" \
            --out "$out/crosscheck/round-$round"
    done
done
for cell in "${cells[@]}"; do
    read -r _ impl backend _ <<< "$cell"
    echo "== profiler cost: $impl [$backend]"
    KERAS_BACKEND=$backend "$python" -m twinbench profiler-cost --impl "$impl" --backend "$backend" --model "$model" \
        --batch-size "${BATCH:-64}" --steps "${COST_STEPS:-100}" --cycles "${COST_CYCLES:-10}" --out "$out/profiler-cost"
done
IFS=';' read -r -a modes <<< "${MODES:---precision tf32;--precision mixed_bfloat16;--jit on}"
for round in $(seq 1 "${MODE_ROUNDS:-1}"); do
    for cell in "${cells[@]}"; do
        read -r _ impl backend _ <<< "$cell"
        for mode in "${modes[@]}"; do
            read -r -a mode_args <<< "$mode"
            echo "== modes, round $round: $impl [$backend] $mode"
            KERAS_BACKEND=$backend "$python" -m twinbench throughput --impl "$impl" --backend "$backend" "${common[@]}" \
                "${mode_args[@]}" --overhead-repeats 0 --out "$out/modes/round-$round" || echo "   (failed: recorded)"
        done
    done
done
"$python" -m twinbench compare "$out"/bench/round-* | tee "$out/compare.txt"
echo; echo "Execution modes (against the float32 eager runs above):"
"$python" -m twinbench compare "$out"/bench/round-* "$out"/modes/round-* | tee "$out/compare-modes.txt"
echo; echo "Cross-check with the hand-written timing:"
"$python" tools/crosscheck.py --compare "$out/crosscheck" "$out/bench" | tee "$out/crosscheck.txt" || true
echo; "$python" -m twinbench profiler-cost --show "$out/profiler-cost" | tee "$out/profiler-cost.txt"
