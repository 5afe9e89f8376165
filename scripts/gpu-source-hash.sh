#!/usr/bin/env bash
# One hash of the sources that the device window's binaries are built from (C, CUDA, the
# emulation's C++, the CMake files, the vocabulary and pages compiled in), the same on any machine
# that holds the same files: gpu-prep.sh writes it into .gpu/manifest, and gpu-check.sh compares
# it on the GPU machine (which has no .git) to know whether the carried binaries are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
find src include cmake tests data/gpt2 CMakeLists.txt -type f \
     \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.cpp' -o -name '*.hpp' \
        -o -name '*.cmake' -o -name CMakeLists.txt -o -name '*.html' -o -name encoder.json -o -name vocab.bpe \) \
     -not -path '*/__pycache__/*' -print0 |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
