# Everything a newcomer needs on a fresh Debian machine:
#   make demo   run the example job end to end on the embedded default (SQLite)
#   make test   lint, type-check and run the test suite on SQLite and a real PostgreSQL
#   make e2e    bring up the single-node Kubernetes in e2e/ (or reuse it) and run the scenarios
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATE ?= 2026-01-01
LINT_DIRS := $(wildcard runtime operator tests examples bench e2e)

.PHONY: setup demo test unit lint pg pg-stop bench bench-restart bench-startup bench-purge bench-peer crds helm-lint clean

$(STAMP): pyproject.toml
	@scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	@rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/baton run examples/orders/job.yaml -p date=$(DEMO_DATE) --db sqlite:///demo.db
	@echo
	$(BIN)/baton show 1 --db sqlite:///demo.db

lint: setup
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy

pg:
	@scripts/postgres.sh start >/dev/null

pg-stop:
	@scripts/postgres.sh stop

# Two workers: most tests wait on processes (runs, stops, kills), so two keep both CPUs busy.
PYTEST_WORKERS ?= 2
unit: setup pg
	BATON_TEST_PG_URL="$$(scripts/postgres.sh url)" $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=25 $(PYTEST_ARGS)

test: lint unit

bench: setup pg
	BATON_TEST_PG_URL="$$(scripts/postgres.sh url)" $(BIN)/python bench/chunk_throughput.py $(BENCH_ARGS)

# restart of a CSV job failed at 90 %: offset seek vs count skip vs a full run's per-row
# cost (RESTART_ARGS, e.g. --rows 100000 --repeat 1)
bench-restart: setup pg
	cd bench && BATON_TEST_PG_URL="$$(../scripts/postgres.sh url)" ../$(BIN)/python file_restart.py $(RESTART_ARGS)

# baton run's fixed cost against python -c pass and a bare step process (STARTUP_ARGS)
bench-startup: setup
	$(BIN)/python bench/run_startup.py $(STARTUP_ARGS)

# baton purge: bounded memory (100k vs 1M step rows) and checkpoint latency, PostgreSQL
# and SQLite (PURGE_ARGS, e.g. --steps 200000 --small 20000)
bench-purge: setup pg
	cd bench && BATON_TEST_PG_URL="$$(../scripts/postgres.sh url)" ../$(BIN)/python purge.py --sqlite $(PURGE_ARGS)

# Baton against Spring Batch 6 on the same CSV -> PostgreSQL job, on a private PostgreSQL
# with pg_stat_statements (port 55433, stopped at the end). Maven comes from Debian if
# missing; its repository is cached outside the checkout (PEER_M2).
# PEER_ARGS, e.g. --rows 100000 --repeat 1 (see bench/README.md)
PEER_M2 ?= /var/cache/baton-bench/m2
bench-peer: setup
	@command -v mvn >/dev/null && command -v javac >/dev/null || { \
	  echo "bench-peer: installing Maven and a JDK from Debian packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven openjdk-17-jdk-headless; }
	cd bench/peer && mvn -B -q -Dmaven.repo.local=$(PEER_M2)/repository package
	$(BIN)/python bench/peer/peer.py $(PEER_ARGS)

crds: setup
	$(BIN)/python -m baton_operator.k8s.crdgen crds charts/baton/crds

# helm comes with the e2e cluster (make cluster-up), or set HELM=/path/to/helm
HELM ?= $(shell . /var/lib/baton-e2e/e2e.env 2>/dev/null && echo $$E2E_HELM || command -v helm)
helm-lint:
	$(HELM) lint charts/baton --set database.url=postgresql://u:p@db/baton
	$(HELM) lint charts/baton --set database.url=postgresql://u:p@db/baton \
		--set pgbouncer.enabled=true --set steps.databasePool=release

clean:
	rm -rf $(VENV) demo.db* baton.db* .pytest_cache .mypy_cache .ruff_cache

-include e2e/e2e.mk
