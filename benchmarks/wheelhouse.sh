#!/usr/bin/env bash
# Offline wheelhouse for a GPU node without network: every wheel yue-train needs beyond the reference image
# (torch 2.11 + CUDA, transformers 5.17, ...), for x86-64 Linux CPython (default 3.12). Run where pip works:
#
#   bash benchmarks/wheelhouse.sh DIR [--python-version 3.12]
#
# Then copy DIR and the checkout to the node and run `bash benchmarks/gpu_suite.sh --wheelhouse DIR`.
# The resolving runs under a recent pip in its own venv (older pips check Requires-Python against the running
# interpreter, not the target); the project and deepspeed build with $PYTHON (default python3), which needs
# torch and setuptools. See benchmarks/wheelhouse.py for what goes where.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  echo "wheelhouse.sh: give the output folder first: bash benchmarks/wheelhouse.sh DIR [--python-version X.Y]" >&2
  exit 2
fi
PY="${PYTHON:-python3}"
TOOLS="${YUE_WHEELHOUSE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/yue-train/wheelhouse-tools}"
if [ ! -x "$TOOLS/bin/python" ] || ! "$TOOLS/bin/python" -c "import packaging" 2>/dev/null; then
  "$PY" -m venv --clear "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --upgrade "pip>=25" packaging
fi
exec "$TOOLS/bin/python" "$HERE/wheelhouse.py" "$@" --build-python "$(command -v "$PY")"
