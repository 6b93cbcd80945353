#!/usr/bin/env bash
# Set up labelclean in the current Python environment.
#   bash scripts/setup.sh          # the library and its command line
#   bash scripts/setup.sh dev      # plus the test tools
#   bash scripts/setup.sh bench    # plus the peers the benchmarks compare against
# PyTorch is installed first, as the CPU build, when it is missing, so that resolving
# `torch>=2.2` later never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    # On the project's machines torch==2.13.0 resolves to a local CPU wheel; elsewhere set
    # LABELCLEAN_TORCH_INDEX to a CPU wheel index (e.g. PyTorch's own CPU index).
    if [ -n "${LABELCLEAN_TORCH_INDEX:-}" ]; then
        "${PIP[@]}" "torch==2.13.0" --index-url "$LABELCLEAN_TORCH_INDEX"
    else
        "${PIP[@]}" "torch==2.13.0"
    fi
fi
extra="${1:-}"
if [ -n "$extra" ]; then
    "${PIP[@]}" -e ".[$extra]"
else
    "${PIP[@]}" -e .
fi
