#!/usr/bin/env bash
# Interleaving against separate processes, on cifar_cnn at batch 64, in a budget of machine time (10 minutes):
#
# 1. interleaved (OUT/interleaved): `twinbench throughput --env torch` and `--env tensorflow`, each environment's two
#    cells in one process, IREPEATS windows each of STEPS steps in an ABBA order (bench/measuring/interleave.py);
# 2. separate (OUT/separate/round-N): the same four cells each in its own process, ROUNDS rounds of REPEATS windows,
#    and keras[jax] (alone in its environment: never interleaved) once, so the decomposition has its ratios too;
# 3. `twinbench compare OUT/interleaved OUT/separate/round-*`: the decomposition, interleaved ratios paired by ABBA
#    block, each with its CI half-width and the machine minutes behind it ("±h% in m min"; the goal is ±3% in a
#    10-minute benchmark), and per cell the process effect: its interleaved median step over its separate-process
#    median, with a 95% CI (interleaving must leave step times as they are: the CI should hold 1).
#
# Budget: BUDGET_MIN minutes (10), half interleaved, half separate. The window counts are derived from STEP_MS, the
# mean step of the five cells (about 100 ms on an idle 2-core CPU: the README's cifar_cnn table), and START_S, the
# seconds a process takes to start, build and compile before its first window (about 25 s there):
#   interleaved, per environment: BUDGET/4 seconds = START_S + 2 cells x (10 warm-up + IREPEATS x (STEPS + 1)) steps;
#   separate, per process (ROUNDS x 4 + 1 of them): BUDGET/2 / processes = START_S + (10 + REPEATS x STEPS) steps.
# With the defaults (STEPS 20, ROUNDS 2): IREPEATS 29, REPEATS 3 (at least 3). The script prints the plan, each
# phase's wall time, and `compare` the minutes behind each ratio: set STEP_MS and START_S from a first run if the
# phases overrun.
#
# Usage: tools/measure_interleave.sh OUT_DIR [PYTHON_TORCH PYTHON_TF PYTHON_JAX]
# BUDGET_MIN, STEP_MS, START_S, STEPS, ROUNDS, THREADS (1), ALLOCATOR (tuned: backends/allocator.py, every process;
# system: as started) and IREPEATS/REPEATS (derived) override the defaults;
# the three pythons default to the interpreters of the nox environments (nox -s throughput --install-only).
set -euo pipefail
out=${1:?usage: tools/measure_interleave.sh OUT_DIR [PYTHON_TORCH PYTHON_TF PYTHON_JAX]}
py_torch=${2:-.nox/throughput-torch/bin/python}
py_tf=${3:-.nox/throughput-tensorflow/bin/python}
py_jax=${4:-.nox/throughput-jax/bin/python}
budget_s=$(( ${BUDGET_MIN:-10} * 60 )); step_ms=${STEP_MS:-100}; start_s=${START_S:-25}
steps=${STEPS:-20}; rounds=${ROUNDS:-2}; warmup=10
processes=$(( rounds * 4 + 1 ))
irepeats=${IREPEATS:-$(( ((budget_s / 4 - start_s) * 1000 / step_ms / 2 - warmup) / (steps + 1) ))}
repeats=${REPEATS:-$(( ((budget_s / 2 / processes - start_s) * 1000 / step_ms - warmup) / steps ))}
(( irepeats >= 2 )) || irepeats=2
(( repeats >= 3 )) || repeats=3
echo "== plan: ${BUDGET_MIN:-10} min; interleaved $irepeats windows per cell, separate $processes processes of" \
     "$repeats windows; $steps steps per window (STEP_MS=$step_ms, START_S=$start_s)"
common=(--model cifar_cnn --batch-size 64 --steps "$steps" --warmup "$warmup" --threads "${THREADS:-1}"
        --allocator "${ALLOCATOR:-tuned}")
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
started=$SECONDS
phase() { echo "== $1 done after $(( SECONDS - started )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

for env in torch tensorflow; do
    python=$py_torch; [[ $env == tensorflow ]] && python=$py_tf
    KERAS_BACKEND=$env "$python" -m twinbench throughput --env "$env" --interleave "${common[@]}" --repeats "$irepeats" \
        --out "$out/interleaved" || echo "   (failed: recorded)"
    phase "interleaved $env"
done
for round in $(seq 1 "$rounds"); do
    envs=(torch tensorflow); [[ $round == 1 ]] && envs+=(jax)
    for env in "${envs[@]}"; do
        case $env in torch) python=$py_torch ;; tensorflow) python=$py_tf ;; jax) python=$py_jax ;; esac
        # Each cell in its own process, as before interleaving; no profiler-off windows (not compared here).
        KERAS_BACKEND=$env "$python" -m twinbench throughput --env "$env" --no-interleave "${common[@]}" \
            --repeats "$repeats" --overhead-repeats 0 --out "$out/separate/round-$round" || echo "   (failed: recorded)"
    done
    phase "separate round $round"
done
"$py_torch" -m twinbench compare "$out/interleaved" "$out"/separate/round-*
