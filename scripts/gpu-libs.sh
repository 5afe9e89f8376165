#!/usr/bin/env bash
# Makes the shared libraries that BINARY... lack on this machine loadable, for gpu-check.sh on the
# GPU machine: the carried Debian packages (DEBS_DIR, from gpu-prep.sh) are unpacked into
# PREFIX (dpkg -x: never installed, so nothing of the machine's own system changes; the device
# notes warn that unpacking packages into / can break it), and each missing library, found there
# or in the machine's CUDA toolkit or PyTorch's CUDA wheels, is linked into PREFIX/needed. Only
# the missing ones: the machine's own libraries (its libstdc++, its libgnutls) stay in use.
#
#   scripts/gpu-libs.sh DEBS_DIR PREFIX BINARY...
#
# Prints the folder to put in front of LD_LIBRARY_PATH (nothing when no library was missing) on
# stdout, where each library came from on stderr; fails when one stays missing.
set -euo pipefail
debs=${1:?usage: scripts/gpu-libs.sh DEBS_DIR PREFIX BINARY...}
prefix=${2:?usage: scripts/gpu-libs.sh DEBS_DIR PREFIX BINARY...}
shift 2
[ $# -gt 0 ] || { echo "usage: scripts/gpu-libs.sh DEBS_DIR PREFIX BINARY..." >&2; exit 2; }

needed=$prefix/needed
missing() { LD_LIBRARY_PATH=$needed${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$@" 2>/dev/null |
              awk '$2 == "=>" && $3 == "not" {print $1}' | sort -u; }

unresolved=$(missing "$@")
[ -z "$unresolved" ] && exit 0

mkdir -p "$needed"
if [ ! -e "$prefix/.unpacked" ]; then
  shopt -s nullglob
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
  touch "$prefix/.unpacked"
fi
# where a missing library may be: the unpacked packages' library folders (OpenBLAS's is its own
# openblas-openmp/, reached on Debian through alternatives that dpkg -x does not make), then the
# CUDA toolkit's and the driver's, then the CUDA libraries of PyTorch's wheels
# (folders that are not there are left out: find and ls fail on them, and so would this script)
dirs=$(find "$prefix" -path "$needed" -prune -o -name '*.so*' -printf '%h\n' | sort -u)
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
         /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && dirs+=" $d"
done
for top in /opt /usr/local/lib /usr/lib/python3; do
  [ -d "$top" ] && dirs+=" $(find "$top" -maxdepth 8 -type d -path '*site-packages/nvidia/*/lib' 2>/dev/null | tr '\n' ' ' || true)"
done

for round in 1 2 3 4 5; do # a library found may itself need one more
  progress=0
  for so in $unresolved; do
    for d in $dirs; do
      if [ -e "$d/$so" ]; then
        ln -sf "$d/$so" "$needed/$so"
        echo "gpu-libs: $so from $d" >&2
        progress=1
        break
      fi
    done
  done
  unresolved=$(missing "$@")
  [ -z "$unresolved" ] && { echo "$needed"; exit 0; }
  [ "$progress" = 1 ] || break
done
echo "gpu-libs: still missing: $(echo $unresolved)" >&2
exit 1
