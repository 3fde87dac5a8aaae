#!/usr/bin/env bash
# Install what msorch needs on Debian 12 and make the venv at .venv.
#
# Idempotent and quick when everything is there: each step checks before it acts.
#   1. Debian packages (MPI, PETSc, HDF5, numba, SLURM, munge, LAMMPS, ...);
#      `apt-get update` runs only when one is missing.
#   2. .venv made with --system-site-packages, so numpy/mpi4py/h5py/petsc4py are
#      Debian's builds (a pip numpy 2 would break them; never pip-install those).
#   3. msorch installed editable into .venv (entry points from setup.cfg);
#      redone only when setup.cfg/pyproject.toml or the checkout path change;
#      its one compiled kernel (msorch/fused_sums.py, numba pycc) built ahead of
#      time, redone when its source is newer.
#   4. Checks: the scientific imports, the plugin entry points, `msorch --help`.
# Runs as root (CI does); uses sudo for apt only when not root.
# LAMMPS (binary, python3-lammps, and liblammps-dev for the liblammps.so the
# Python module loads) and SUMO (sumo, libsumo, sumo-tools) are always installed:
# md.lammps and traffic.sumo run them in-process.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

APT_PACKAGES=(
    openmpi-bin libopenmpi-dev python3-mpi4py python3-petsc4py petsc-dev
    python3-h5py-mpi python3-numpy python3-yaml python3-pytest python3-pytest-mpi
    python3-matplotlib python3-scipy python3-numba python3-sklearn python3-typing-extensions hdf5-tools
    python3-meshio
    slurm-wlm munge python3-venv python3-setuptools python3-wheel python3-dev gcc lammps
    python3-lammps liblammps-dev sumo sumo-tools
)

say() { printf 'bootstrap: %s\n' "$*"; }
t_start=$SECONDS

# --- 1. Debian packages ------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { say "not root and no sudo: cannot install ${missing[*]}"; exit 1; }
        SUDO=(sudo)
    fi
    # Another apt/dpkg run holds the lock: wait for it rather than fail.
    # (a /proc scan: a minimal Debian root has no procps, so no pgrep)
    apt_busy() {
        local comm f
        for f in /proc/[0-9]*/comm; do
            read -r comm < "$f" 2>/dev/null || continue
            [[ "$comm" == apt-get || "$comm" == dpkg ]] && return 0
        done
        return 1
    }
    while apt_busy; do sleep 3; done
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "Debian packages: all ${#APT_PACKAGES[@]} present"
fi

# --- 2. venv -----------------------------------------------------------------
if [[ -x "$PY" ]] && "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null \
        && grep -q '^include-system-site-packages = true' "$VENV/pyvenv.cfg" 2>/dev/null \
        && grep -q '^home = /usr/bin$' "$VENV/pyvenv.cfg" 2>/dev/null; then
    say "venv: $VENV present"
else
    say "creating venv $VENV (with Debian's site packages)"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

# --- 3. msorch, editable -----------------------------------------------------
# The stamp records what the installed metadata was built from.
stamp_file="$VENV/.msorch-install-stamp"
stamp="$ROOT $(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]] \
        && "$PY" -c 'import importlib.metadata as m; m.distribution("msorch")' 2>/dev/null; then
    say "msorch: editable install up to date"
else
    say "installing msorch editable (pip --no-deps --no-build-isolation -e .)"
    # Debian's setuptools/wheel do the build: no download, no numpy from PyPI.
    "$PY" -m pip install -q --no-deps --no-build-isolation --disable-pip-version-check -e "$ROOT"
    printf '%s\n' "$stamp" > "$stamp_file"
fi
# The convergence-sums kernel, compiled ahead of time: no numba import when a job runs.
aot=(msorch/_fused_aot*.so)
if [[ -f "${aot[0]}" && "${aot[0]}" -nt msorch/fused_sums.py ]]; then
    say "msorch: compiled kernel up to date"
else
    say "compiling msorch's convergence-sums kernel (numba pycc)"
    rm -f msorch/_fused_aot*.so
    "$PY" -m msorch.fused_sums
fi

# --- 3b. pure-Python packages Debian lacks (--no-deps: their dependencies are the Debian packages above) --
# PyDMD (msorch analyze) needs numpy, scipy, matplotlib, scikit-learn and typing-extensions;
# xarray/h5netcdf only for its COSTS classes, which msorch does not use.
PYDMD_VERSION=2025.8.1
if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('pydmd') != '$PYDMD_VERSION')" 2>/dev/null; then
    say "pydmd $PYDMD_VERSION present"
else
    say "installing pydmd $PYDMD_VERSION (pip --no-deps)"
    "$PY" -m pip install -q --no-deps --disable-pip-version-check "pydmd==$PYDMD_VERSION"
fi

# --- 4. checks -----------------------------------------------------------------
# Debian's h5py picks its MPI build only under mpirun (or H5PY_ALWAYS_USE_MPI).
H5PY_ALWAYS_USE_MPI=1 "$PY" - <<'EOF'
import importlib
from importlib.metadata import entry_points

mods = ["mpi4py", "petsc4py", "h5py", "numpy", "numba", "scipy", "yaml", "pytest", "pytest_mpi", "pydmd"]
for name in mods:
    importlib.import_module(name)
import h5py, numpy
assert h5py.get_config().mpi, "h5py is not the MPI build (python3-h5py-mpi)"
solvers = sorted(ep.name for ep in entry_points(group="msorch.solvers"))
assert solvers, "no msorch.solvers entry points: the editable install did not register setup.cfg"
print(f"bootstrap: imports ok (numpy {numpy.__version__}, h5py {h5py.__version__} mpi); "
      f"solvers: {', '.join(solvers)}")
EOF
if [[ -f msorch/cli.py ]]; then
    "$VENV/bin/msorch" --help >/dev/null
    say "msorch --help ok"
else
    say "msorch/cli.py not there yet: CLI not checked"
fi
for tool in mpirun lmp sumo netconvert sbatch slurmctld slurmd munged; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { say "missing $tool after install"; exit 1; }
done
say "done in $((SECONDS - t_start)) s"
