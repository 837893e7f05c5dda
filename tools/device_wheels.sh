#!/usr/bin/env bash
# The wheels the lent GPU machine lacks for twinbench (keras and the two it needs that are not there:
# namex, optree), for its Python 3.12 on x86-64, and twinbench's own, into .whl/ (ignored by git).
# Run here, where pip reaches the package index:  bash tools/device_wheels.sh
# Then, on the GPU machine (carry: [".whl"]), in one call:
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#     PYTHONPATH=/tmp/site python3 -m twinbench study run gpu --out "$OUT/gpu" --rounds 2
# (`twinbench study show gpu` prints its runs; every environment runs on python3 there.)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for spec in "keras==3.15.*" namex optree; do
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
python3 -m pip wheel --no-deps -w .whl .   # twinbench itself: pure Python
ls -l .whl
