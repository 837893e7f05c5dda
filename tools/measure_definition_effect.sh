#!/usr/bin/env bash
# The definition-effect table in docs/definition_effect.md: stock keras.applications vs the matched Keras
# definition on each backend, and the matched definition vs its native twin (torchvision, tf.keras), for
# ResNet50, VGG19 and MobileNetV2. ROUNDS passes over the three environments, each cell its own process
# (python -m twinbench definition-effect --env ENV); the table pools the rounds and resamples them as runs.
#
# Usage: tools/measure_definition_effect.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]] [-- OPTIONS]
# OPTIONS go to every `definition-effect --env` call (e.g. --batch-size 16 --input-shape 32x32x3 --threads 2).
# The three pythons default to the interpreters of the nox environments (nox -s throughput --install-only creates them).
set -euo pipefail
out=${1:?usage: tools/measure_definition_effect.sh OUT_DIR [ROUNDS [PYTHON_TORCH PYTHON_TF PYTHON_JAX]] [-- OPTIONS]}
shift
positional=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do positional+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
rounds=${positional[0]:-2}
py_torch=${positional[1]:-.nox/throughput-torch/bin/python}
py_tf=${positional[2]:-.nox/throughput-tensorflow/bin/python}
py_jax=${positional[3]:-.nox/throughput-jax/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
for round in $(seq 1 "$rounds"); do
    for env in "torch $py_torch" "tensorflow $py_tf" "jax $py_jax"; do
        read -r name python <<< "$env"
        echo "== round $round: $name environment, load average $(cut -d' ' -f1-3 /proc/loadavg)"
        KERAS_BACKEND=$name "$python" -m twinbench definition-effect --env "$name" --out "$out/round-$round" "$@"
    done
done
"$py_torch" -m twinbench definition-effect --out "$out" --markdown
