#!/usr/bin/env bash
# Builds the device window's binaries (README "The device window"): gpt2c and tests/test_ops,
# Release, CUDA code for sm_90 (H100, H200) only, into BUILD_DIR. gpu-prep.sh runs it here;
# gpu-check.sh runs it on the GPU machine when the carried binaries cannot run there or were
# built from other sources. One script, so that both places build with the same flags.
#
#   scripts/gpu-build.sh BUILD_DIR [JOBS]
#
# DEPS_PREFIX (optional): a folder that the carried .debs were unpacked into (dpkg -x), for a
# machine without Debian's -dev packages (the GPU machine): headers, pkg-config files and
# libraries are then taken from there. MPI is left out: the window runs one process, and Open
# MPI's libraries would be a dozen more packages to carry.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/gpu-build.sh BUILD_DIR [JOBS]}
jobs=${2:-2}

args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_TESTING=ON
      -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON)
if [ -n "${DEPS_PREFIX:-}" ]; then
  lib=$DEPS_PREFIX/usr/lib/x86_64-linux-gnu
  # the .pc files say /usr/...; the sysroot puts the prefix in front of their -I and -L paths
  export PKG_CONFIG_SYSROOT_DIR=$DEPS_PREFIX
  export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$lib/openblas-openmp/pkgconfig:$DEPS_PREFIX/usr/share/pkgconfig
  command -v pkg-config >/dev/null || args+=(-DPKG_CONFIG_EXECUTABLE="$DEPS_PREFIX/usr/bin/pkgconf")
  # oneDNN and bzip2 are found by find_path/find_library, not pkg-config
  args+=(-DCMAKE_INCLUDE_PATH="$DEPS_PREFIX/usr/include" -DCMAKE_LIBRARY_PATH="$lib")
  # the linker resolves the libraries' own dependencies (libgfortran of OpenBLAS, ...) there too
  export LD_LIBRARY_PATH=$lib:$lib/openblas-openmp:$DEPS_PREFIX/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
mkdir -p "$build"
cmake -S . -B "$build" "${args[@]}" >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" -j "$jobs" --target gpt2c_cli test_ops
# a build without nvcc would have no CUDA backend at all: refuse it here rather than there
grep -q '^CMAKE_CUDA_ARCHITECTURES:.*=90$' "$build/CMakeCache.txt" &&
  "$build/gpt2c" info | grep -q '^cuda: built' ||
  { echo "gpu-build: $build/gpt2c has no CUDA backend for sm_90 (no CUDA compiler found?)" >&2; exit 1; }
