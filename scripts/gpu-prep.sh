#!/usr/bin/env bash
# Prepares the device window (README "The device window"), here, before it: everything that
# scripts/gpu-check.sh needs on the GPU machine, which has no network and none of gpt2c's
# Debian libraries, in one git-ignored folder, .gpu/, that the device call carries:
#   .gpu/bin/       gpt2c and test_ops, Release, sm_90 (scripts/gpu-build.sh)
#   .gpu/debs/      the Debian packages of every shared library they load, except libc, libgcc
#                   and libstdc++ (the GPU machine's own are newer, and must not be shadowed) and
#                   CUDA's (the GPU machine's toolkit has them); plus the -dev packages and
#                   pkg-config, so that gpu-check.sh can build there if the binaries cannot run
#   .gpu/manifest   what was built, from which sources (their hash: gpu-check.sh rebuilds there
#                   when the tree it runs on holds other sources)
# Then it checks that the tree and .gpu/ together stay under the device tool's 64 MiB, and
# prints the device call. The CPU reference logs (tests/gpu_reference/) are made by
# scripts/gpu-reference.sh when missing: about an hour on 2 busy cores for d12.
#
#   scripts/gpu-prep.sh            (JOBS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PREP=.gpu
BUILD=${GPT2C_GPU_BUILD:-build-gpu}
JOBS=${JOBS:-2}
LIMIT=$((64 * 1024 * 1024)) # the device tool's limit on what travels: tree plus carried paths

mkdir -p "$PREP/bin" "$PREP/debs"
git check-ignore -q "$PREP" || { echo "gpu-prep: $PREP is not git-ignored (.gitignore)" >&2; exit 1; }

echo "gpu-prep: building gpt2c and test_ops for sm_90 in $BUILD"
log=$(mktemp)
scripts/gpu-build.sh "$BUILD" "$JOBS" >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
rm -f "$log"
install -m 755 "$BUILD/gpt2c" "$BUILD/tests/test_ops" "$PREP/bin/"

# Debian packages: the ldd closure of the binaries (what the dynamic loader will ask for),
# mapped to the packages that hold those files
declare -A pkgs=()
for lib in $(ldd "$PREP/bin/gpt2c" "$PREP/bin/test_ops" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
  owner=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true)
  pkg=${owner%%:*}
  case "$pkg" in
    "") ;;                                # not Debian's: CUDA's toolkit (libcudart, libcublasLt)
    libc6 | libgcc-s1 | libstdc++6) ;;    # the GPU machine's own
    *) pkgs[$pkg]=1 ;;
  esac
done
# For a build there (gpu-build.sh with DEPS_PREFIX): the -dev packages of the pkg-config modules
# CMakeLists.txt asks for and of every module they require, privately too (pkg-config checks
# those exist: libmicrohttpd's needs gnutls's, which needs five more); oneDNN's and bzip2's, which
# CMake finds without pkg-config; pkg-config itself.
queue=(jansson openblas libmicrohttpd libisal)
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
  m=${queue[0]}; queue=("${queue[@]:1}")
  [ -z "${seen[$m]:-}" ] || continue
  seen[$m]=1
  pc=$(pkg-config --path "$m") || { echo "gpu-prep: no pkg-config module $m here" >&2; exit 1; }
  owner=$(dpkg -S "$(readlink -f "$pc")") || { echo "gpu-prep: no package holds $pc" >&2; exit 1; }
  pkgs[${owner%%:*}]=1
  queue+=($(pkg-config --print-requires --print-requires-private "$m" | awk '{print $1}'))
done
for pkg in libdnnl-dev libbz2-dev pkgconf-bin libpkgconf3; do
  pkgs[$pkg]=1
done

rm -f "$PREP"/debs/*.deb
updated=0
for pkg in $(printf '%s\n' "${!pkgs[@]}" | sort); do
  # the version installed here, which the binaries were linked against
  ver=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || true)
  [ -n "$ver" ] || { echo "gpu-prep: $pkg is not installed here (scripts/install-deps.sh)" >&2; exit 1; }
  if ! (cd "$PREP/debs" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1); then
    [ "$updated" = 1 ] || { apt-get update -q >/dev/null; updated=1; }
    # else the archive's current version: a stable release's updates keep the library's ABI
    # (the same soname), and an installed version the archive has since replaced is gone
    (cd "$PREP/debs" && { apt-get download -q "$pkg=$ver" >/dev/null 2>&1 || apt-get download -q "$pkg" >/dev/null; }) ||
      { echo "gpu-prep: cannot download $pkg" >&2; exit 1; }
  fi
done

hash=$(scripts/gpu-source-hash.sh)
{
  echo "sources $hash"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) $(. /etc/os-release && echo "$ID $VERSION_ID")"
  echo "nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "cmake -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_TESTING=ON -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON"
  echo "debs $(cd "$PREP/debs" && ls *.deb | tr '\n' ' ')"
} >"$PREP/manifest"

# the reference logs that gpu-check.sh compares with, made once and committed
for ref in d2 d12; do
  if [ ! -s "tests/gpu_reference/${ref}_cpu_fp32.jsonl" ]; then
    echo "gpu-prep: making the CPU reference log of $ref (scripts/gpu-reference.sh $ref)"
    scripts/gpu-reference.sh "$ref" "$BUILD/gpt2c"
  fi
done

# what travels: the tree (tracked files, and untracked ones git does not ignore) and .gpu/
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null |
       awk '{s += $1} END {print s + 0}')
carried=$(find "$PREP" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
total=$((tree + carried))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "gpu-prep: tree $(mib "$tree") + $PREP $(mib "$carried") ($(ls "$PREP"/debs | wc -l) packages) = $(mib "$total") of $(mib $LIMIT)"
[ "$total" -lt "$LIMIT" ] || { echo "gpu-prep: over the device tool's limit" >&2; exit 1; }
echo "gpu-prep: ready. The device call (one run, about 8 minutes of the 15):"
echo "  carry: [\"$PREP\"]"
echo "  command: PYTHONUNBUFFERED=1 scripts/gpu-check.sh \$OUT"
echo "  timeout_s: 600"
