#!/usr/bin/env bash
# Make libtorch available to the build, with no manual step:
#   1. a Python venv with the pinned torch wheel (tch =0.24.0 needs libtorch 2.11.0),
#      created once at $SLIMBENCH_VENV (default ~/.cache/slimbench/venv-torch-2.11.0,
#      shared by every checkout, reused by CI when present);
#   2. a `.torch` link in the repository to that venv's `torch/` package, which
#      .cargo/config.toml hands to torch-sys as LIBTORCH.
# Environment:
#   SLIMBENCH_VENV        where the venv lives
#   SLIMBENCH_TORCH_INDEX pip index URL for the wheel (e.g. https://download.pytorch.org/whl/cpu
#                         for a CPU-only libtorch, about 5x smaller than PyPI's CUDA build)
#   PYTHON                interpreter that creates the venv (default python3)
set -euo pipefail

TORCH_VERSION=2.11.0
ORT_VERSION=1.31.1
ONNX_VERSION=1.23.2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SLIMBENCH_VENV:-$HOME/.cache/slimbench/venv-torch-$TORCH_VERSION}"
PY="${PYTHON:-python3}"

# The CUDA 13 wheel's CUDA headers lack crt/ and the CCCL headers that nccl.h and
# cuda_runtime.h include; these two header-only wheels (a few MB) complete them so the
# bridge can compile c10d's ProcessGroupNCCL. Without them it builds without NCCL and
# says so. CPU wheels have no NCCL to build for.
nccl_headers() {
  local site
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)" || return 0
  [ -e "$site/nvidia/cu13/include/cuda_runtime.h" ] || return 0
  [ -e "$site/nvidia/cu13/include/crt/host_config.h" ] && [ -d "$site/nvidia/cu13/include/cccl" ] && return 0
  echo "setup-torch: adding the CUDA crt and CCCL headers NCCL needs (header-only wheels)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    || echo "setup-torch: warning: could not install them; slimbench builds without NCCL" >&2
}

# Fast path: the link is in place and points at the pinned version, and the venv it
# points into (whichever that is: SLIMBENCH_VENV of an earlier call, as in the Docker
# builds) has the pinned onnxruntime and onnx.
SITE="$(dirname "$(readlink -f "$ROOT/.torch" 2>/dev/null || echo /nonexistent/torch)")"
have_dist() { compgen -G "$SITE/$1-$2.dist-info" >/dev/null; }
if grep -qs "^__version__ = '$TORCH_VERSION" "$ROOT/.torch/version.py" \
  && have_dist onnxruntime "$ORT_VERSION" && have_dist onnx "$ONNX_VERSION"; then
  nccl_headers
  exit 0
fi

have_torch() {
  "$VENV/bin/python" - "$TORCH_VERSION" 2>/dev/null <<'PYCODE'
import sys, torch
sys.exit(0 if torch.__version__.split('+')[0] == sys.argv[1] else 1)
PYCODE
}

if ! have_torch; then
  echo "setup-torch: installing torch==$TORCH_VERSION into $VENV (once; a few GB from PyPI)" >&2
  if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "setup-torch: error: $PY cannot create virtual environments" >&2
    echo "  hint: install Python 3 with the venv module (Debian/Ubuntu: apt install python3-venv)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  pip_args=(install --quiet --disable-pip-version-check "torch==$TORCH_VERSION")
  if [ -n "${SLIMBENCH_TORCH_INDEX:-}" ]; then pip_args+=(--index-url "$SLIMBENCH_TORCH_INDEX"); fi
  "$VENV/bin/python" -m pip "${pip_args[@]}"
  have_torch || { echo "setup-torch: error: torch $TORCH_VERSION did not import after installing" >&2; exit 1; }
fi

# ONNX Runtime (its libonnxruntime.so is what the `onnxruntime` backend loads; the
# binary finds it in this venv without LD_LIBRARY_PATH) and the `onnx` package, which
# the round-trip tests use to check exported files. Pinned; installed once.
ort_ok() {
  "$VENV/bin/python" - "$ORT_VERSION" "$ONNX_VERSION" 2>/dev/null <<'PYCODE'
import sys, onnxruntime, onnx
sys.exit(0 if (onnxruntime.__version__, onnx.__version__) == (sys.argv[1], sys.argv[2]) else 1)
PYCODE
}
if ! ort_ok; then
  echo "setup-torch: installing onnxruntime==$ORT_VERSION and onnx==$ONNX_VERSION into $VENV (once)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" \
    || { echo "setup-torch: error: could not install onnxruntime==$ORT_VERSION (PyPI)" >&2; exit 1; }
fi

nccl_headers
TORCH_DIR="$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)"
if [ "$(readlink "$ROOT/.torch" 2>/dev/null)" != "$TORCH_DIR" ]; then
  ln -sfn "$TORCH_DIR" "$ROOT/.torch"
fi
