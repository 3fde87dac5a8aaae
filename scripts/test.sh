#!/usr/bin/env bash
# The whole test suite, in the venv made by scripts/bootstrap.sh.
#
#   scripts/test.sh [serial] [mpi] [slurm] [verify]   (default: serial mpi slurm, in that order)
#
#   serial  pytest -m "not slurm" tests: unit, e2e, and tests/mpi's serial tests
#           that start mpirun themselves (pytest-mpi skips @mark.mpi ones here)
#   mpi     @mark.mpi tests under `mpirun -n 2` and `-n 4` with --with-mpi
#           (pytest's exit 5, "no tests collected", counts as success)
#   slurm   starts the local SLURM (scripts/local_slurm.py), runs tests/slurm,
#           and stops it again, also when the tests fail
#   verify  long verification runs (@mark.verify: convergence studies, large
#           ensembles, published-table comparisons that take minutes), with a
#           printed time budget; `make verify` and CI run it after `make test`
#
# Every stage runs even if an earlier one failed; the exit code is non-zero if
# any failed.  Each stage has a time limit so a hung MPI job cannot eat CI's budget.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "test.sh: no $PY: run scripts/bootstrap.sh (or make bootstrap) first" >&2; exit 1; }

# Root MPI on an oversubscribed 2-core machine (also set by the Makefile).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Parallel pytest processes must not race on one cache directory.
PYTEST=("$PY" -m pytest -p no:cacheprovider --color=no)

SLURM_TOOL=(/usr/bin/python3 "$ROOT/scripts/local_slurm.py")
failed=()
run_stage() {  # run_stage NAME LIMIT_SECONDS CMD... ; records failures
    local name=$1 limit=$2 rc t0=$SECONDS
    shift 2
    echo "=== test.sh: $name: $*"
    timeout --kill-after=30 "$limit" "$@"
    rc=$?
    [[ $rc -eq 124 || $rc -eq 137 ]] && echo "=== test.sh: $name: TIMED OUT after ${limit} s"
    if [[ $rc -eq 0 || ($rc -eq 5 && $name == mpi-*) ]]; then
        echo "=== test.sh: $name: ok ($((SECONDS - t0)) s)"
    else
        echo "=== test.sh: $name: FAILED with exit code $rc ($((SECONDS - t0)) s)"
        failed+=("$name")
    fi
}

stage_serial() {
    run_stage serial 2400 "${PYTEST[@]}" tests -m "not slurm and not verify" -q
}

stage_mpi() {
    local n
    for n in 2 4; do
        run_stage "mpi-$n" 900 mpirun --oversubscribe -n "$n" "${PYTEST[@]}" --with-mpi -m mpi -q tests/mpi
    done
}

stage_slurm() {
    local conf
    if "${SLURM_TOOL[@]}" status >/dev/null; then
        echo "=== test.sh: reusing the running local SLURM (left running afterwards)"
    elif "${SLURM_TOOL[@]}" start; then
        # Stop it even if the tests are interrupted (INT/TERM exit, which runs EXIT).
        trap '"${SLURM_TOOL[@]}" stop' EXIT
        trap 'exit 130' INT TERM
    else
        failed+=("slurm-start")
        return
    fi
    conf=$("${SLURM_TOOL[@]}" env)
    export "${conf#export }"  # SLURM_CONF=<private dir>/slurm.conf
    run_stage slurm 1500 "${PYTEST[@]}" -m slurm -q tests/slurm
    if [[ -n "$(trap -p EXIT)" ]]; then
        "${SLURM_TOOL[@]}" stop
        trap - EXIT INT TERM
    fi
}

VERIFY_BUDGET=${MSORCH_VERIFY_BUDGET:-3600}   # seconds; the stage fails when it is exceeded
stage_verify() {
    echo "=== test.sh: verify: budget ${VERIFY_BUDGET} s"
    run_stage verify "$VERIFY_BUDGET" "${PYTEST[@]}" tests -m "verify and not slurm" -q --durations=15
}

stages=("$@")
((${#stages[@]})) || stages=(serial mpi slurm)
for stage in "${stages[@]}"; do
    case $stage in
        serial|mpi|slurm|verify) "stage_$stage" ;;
        *) echo "test.sh: unknown stage '$stage' (serial, mpi, slurm, verify)" >&2; exit 2 ;;
    esac
done

if ((${#failed[@]})); then
    echo "=== test.sh: FAILED stages: ${failed[*]}"
    exit 1
fi
echo "=== test.sh: all stages ok: ${stages[*]}"
