# msorch: install, demo, tests, benchmarks.  Everything runs in .venv (scripts/bootstrap.sh).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

# Root MPI on an oversubscribed 2-core machine, for everything make runs.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_mpi_yield_when_idle := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1

.PHONY: bootstrap demo test verify test-serial test-mpi test-slurm bench slurm-start slurm-stop slurm-status

bootstrap:
	scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/msorch run jobs/partitioned_heat.yaml -o out/demo

# Serial tests, then @mark.mpi tests on 2 and 4 ranks, then the SLURM tests (scripts/test.sh).
test: bootstrap
	scripts/test.sh

# Long verification runs (@mark.verify), with a time budget; CI runs them after `make test`.
verify: bootstrap
	scripts/test.sh verify

test-serial test-mpi test-slurm: bootstrap
	scripts/test.sh $(@:test-%=%)

bench:
	scripts/bootstrap.sh --bench
	@set -e; for f in benchmarks/*.py; do echo "=== $$f"; $(PY) "$$f"; done

# The local single-node SLURM used by tests/slurm; `eval $$(scripts/local_slurm.py env)` to use it.
slurm-start slurm-stop slurm-status:
	/usr/bin/python3 scripts/local_slurm.py $(@:slurm-%=%)
