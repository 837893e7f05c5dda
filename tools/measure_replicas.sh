#!/usr/bin/env bash
# The data-parallel scaling of docs/cluster.md on a CPU: throughput of cifar_cnn and mnist_cnn at 1 and 2 replicas
# (--batch-size is the global batch: the same work per step), every implementation that has a data-parallel engine
# (torch DDP under torchrun, MirroredStrategy for tf_keras and keras[tensorflow], keras.distribution.DataParallel for
# keras[jax]), each replica with THREADS threads; one replica with 2 x THREADS threads too, the same cores used the
# ordinary way. Every run is its own process; about 8 minutes on 2 cores with the defaults. `python -m twinbench compare`
# prints the records; the cell's label carries replicas=2.
#
# Usage: tools/measure_replicas.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# MODELS (default "cifar_cnn mnist_cnn") and THREADS (default 1) override the defaults; the three pythons default to
# the interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_replicas.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-1}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
threads=${THREADS:-1}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL), from the one table in backends/environments.py; keras[torch]
# has no data-parallel engine (docs/cluster.md) and is left out.
mapfile -t cells < <("$py_torch" -m twinbench cells | grep -v 'keras\[torch\]')
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for model in ${MODELS:-cifar_cnn mnist_cnn}; do
        for cell in "${cells[@]}"; do
            read -r env impl backend label <<< "$cell"
            python=$(python_for "$env")
            # replicas threads-per-replica: one replica (one core), two replicas (one core each), one replica (two cores)
            for setting in "1 $threads" "2 $threads" "1 $((2 * threads))"; do
                read -r replicas run_threads <<< "$setting"
                echo "== round $round: $model $label replicas=$replicas threads=$run_threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
                KERAS_BACKEND=$backend "$python" -m twinbench throughput --model "$model" --impl "$impl" --backend "$backend" \
                    --replicas "$replicas" --threads "$run_threads" --batch-size 64 --steps 10 --repeats 4 --warmup 3 \
                    --overhead-repeats 0 --out "$out/round-$round/threads-$run_threads" || echo "   (failed: recorded)"
            done
        done
    done
done
"$py_torch" -m twinbench compare "$out"/round-*/threads-*
