#!/usr/bin/env bash
# The PyTorch paper's throughput table (Paszke et al., NeurIPS 2019, Table 1: AlexNet, VGG-19, ResNet-50,
# MobileNet, GNMTv2, NCF) as twinbench measures it on a CPU: every model in all five implementations, each a
# ratio to the native PyTorch twin with its CI (`python -m twinbench compare`, which pools the rounds).
#
# CPU-sized configurations (stated in every record's config): the image models at their smallest useful inputs
# (AlexNet 63x63, its minimum; the others 32x32) and small batches; GNMT at its "small" size on the embedded
# `reverse` lengths; NCF with embedding tables of MovieLens-1M's size (6,040 users x 3,706 items, MLPerf's NeuMF
# towers) and a large batch, as recommenders train. Throughput is samples per second (the records say
# images/s): tokens per second for GNMT are samples/s x target length. Sized for about 10 minutes on 2 cores with
# one round; models not registered in this checkout (gnmt before its branch is merged) are skipped.
#
# Usage: tools/measure_paper_table.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]
# MODELS (default: the six) and THREADS (default 1) override the defaults; the three pythons default to the
# interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_paper_table.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]]}
rounds=${2:-1}
py_torch=${3:-.nox/throughput-torch/bin/python}
py_tf=${4:-.nox/throughput-tensorflow/bin/python}
py_jax=${5:-.nox/throughput-jax/bin/python}
python_for() { case $1 in torch) echo "$py_torch" ;; tensorflow) echo "$py_tf" ;; jax) echo "$py_jax" ;; esac; }
# Per model: the options of its runs (batch, input, steps per window, windows).
model_args() {
    case $1 in
        alexnet) echo "--batch-size 16 --input-shape 63x63x3 --steps 3 --repeats 3 --warmup 2" ;;
        vgg19) echo "--batch-size 8 --input-shape 32x32x3 --steps 2 --repeats 3 --warmup 1" ;;
        resnet50) echo "--batch-size 16 --input-shape 32x32x3 --steps 3 --repeats 3 --warmup 2" ;;
        mobilenet_v2) echo "--batch-size 16 --input-shape 32x32x3 --steps 5 --repeats 3 --warmup 2" ;;
        gnmt) echo "--batch-size 32 --steps 3 --repeats 3 --warmup 2" ;;
        ncf) echo "--batch-size 1024 --input-shape 6040x3706 --steps 10 --repeats 3 --warmup 3" ;;
        *) echo "--batch-size 16 --steps 3 --repeats 3 --warmup 2" ;;
    esac
}
mapfile -t registered < <("$py_torch" -c "from twinbench.models import list_models; print('\n'.join(list_models()))")
models=()
for model in ${MODELS:-alexnet vgg19 resnet50 mobilenet_v2 gnmt ncf}; do
    if printf '%s\n' "${registered[@]}" | grep -qx "$model"; then models+=("$model"); else echo "skipped $model: not registered here"; fi
done
# The cells, one a line (ENVIRONMENT IMPLEMENTATION BACKEND LABEL, in table order), from the one table in backends/environments.py.
mapfile -t cells < <("$py_torch" -m twinbench cells)
[[ ${#cells[@]} -gt 0 ]] || { echo "python -m twinbench cells listed no cells"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for model in "${models[@]}"; do
        read -r -a margs <<< "$(model_args "$model")"
        for cell in "${cells[@]}"; do
            read -r env impl backend label <<< "$cell"
            echo "== round $round: $model $label, load average $(cut -d' ' -f1-3 /proc/loadavg)"
            # A cell that fails is a failed record; the rounds go on.
            KERAS_BACKEND=$backend "$(python_for "$env")" -m twinbench throughput --model "$model" --impl "$impl" \
                --backend "$backend" "${margs[@]}" --threads "${THREADS:-1}" --overhead-repeats 0 \
                --out "$out/round-$round" || echo "   (failed: recorded)"
        done
    done
done
"$py_torch" -m twinbench compare "$out"/round-*
