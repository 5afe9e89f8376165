#!/usr/bin/env bash
# Install what gpt2c needs to build and test, idempotently:
#  - Debian packages: compiler, cmake, jansson (JSON), OpenBLAS and oneDNN (both OpenMP builds, so
#    they and our own loops share one thread pool), libmicrohttpd (the HTTP of gpt2c serve),
#    libbz2 (the shipped HellaSwag set is bzip2), ISA-L (CRC32C of TensorBoard's files),
#    gnuplot (gpt2c plot draws with it), Chart.js (the live charts of serve --runs),
#    chromium and its chromedriver (the test that drives serve's page in a browser),
#    Open MPI (multi-process training and its
#    tests), Python and PyTorch (the reference the tests compare with);
#  - a Python virtual environment in .venv with the test references (requirements-dev.txt);
#  - where nvcc is, the cuDNN frontend's headers (third_party/cudnn-frontend/requirements.txt).
# As root it runs apt-get itself; otherwise it prints the exact command to run.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config libjansson-dev libopenblas-openmp-dev libdnnl-dev
          libmicrohttpd-dev libbz2-dev libisal-dev gnuplot-nox libjs-chart.js
          chromium chromium-driver
          libopenmpi-dev openmpi-bin
          python3 python3-venv python3-dev python3-numpy python3-torch)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive bash -c "$cmd" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive sudo bash -c "$cmd" >/dev/null
  else
    echo "install-deps: missing Debian packages; run as root:" >&2
    echo "  $cmd" >&2
    exit 1
  fi
fi

# Debian's own python3 (not a pyenv or conda one): later issues use Debian's python3-torch,
# which the venv sees through --system-site-packages.
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "install-deps: setting up .venv (requirements-dev.txt)"
  /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# The cuDNN frontend's headers (header-only C++), for the CUDA backend's cuDNN attention
# (src/ops/cuda/attention_cudnn.cu), only where there is a CUDA compiler to use them. PyPI ships
# them inside its wheel; pip fetches the one pinned wheel (checked against its hash) and only its
# include/ is kept, in third_party/cudnn-frontend/include (git-ignored; the licences are committed
# beside it). No Python package is installed. Without them CMake builds the backend without cuDNN attention.
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  fe=third_party/cudnn-frontend
  want=$(sha256sum $fe/requirements.txt | cut -d' ' -f1)
  if [ "$(cat $fe/include/.requirements.sha256 2>/dev/null)" != "$want" ]; then
    echo "install-deps: fetching the cuDNN frontend's headers ($fe/requirements.txt)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
      --implementation cp --abi cp311 --require-hashes -r $fe/requirements.txt -d "$tmp"
    rm -rf $fe/include
    .venv/bin/python - "$tmp"/nvidia_cudnn_frontend-*.whl $fe <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("include/")])
PY
    echo "$want" > $fe/include/.requirements.sha256
  fi
fi
