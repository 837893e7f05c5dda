#!/usr/bin/env bash
# The wheels the lent GPU machine lacks for twinbench (keras and the two it needs that are not there:
# namex, optree), for its Python 3.12 on x86-64, into .whl/ (ignored by git). tools/measure_gpu.sh
# installs them there. Run here, where pip reaches the package index:  bash tools/device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for spec in "keras==3.15.*" namex optree; do
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
ls -l .whl
