#!/usr/bin/env bash
# Throw-away venv with Starsim for benchmarks/epi_bench.py (never the project's .venv:
# Starsim needs numpy 2, which breaks the Debian-built mpi4py/h5py/petsc4py there).
# Usage: benchmarks/starsim/setup.sh [VENV]   (default /tmp/starsim-venv). Idempotent.
set -euo pipefail
VENV=${1:-/tmp/starsim-venv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import starsim" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q starsim
"$VENV/bin/python" -c "import starsim; print('starsim', starsim.__version__)"
