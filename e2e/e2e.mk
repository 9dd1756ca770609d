# End-to-end targets, included from the top-level Makefile:
#   include e2e/e2e.mk
#
#   make e2e             bring the cluster up (or reuse it), run the e2e scenarios
#                        (only the files named, if E2E_PYTEST_ARGS names e2e/... paths);
#                        on failure, gather every component's log into $(E2E_LOGS_DIR)
#   make cluster-up      e2e/cluster up
#   make cluster-down    e2e/cluster down
#   make cluster-status  e2e/cluster status
#   make cluster-logs    e2e/cluster logs $(E2E_LOGS_DIR)
#   make e2e-scale       the cluster + kwok (KWOK_NODES fake nodes) + the scale database,
#                        then bench/operator_scale.py; SCALE=small for a CI-size run;
#                        kwok and the scale database are stopped afterwards
#
# The local provider needs root; as another user the targets use sudo,
# unless E2E_PROVIDER=kind (Docker + kind). See e2e/README.md.

E2E_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
E2E_CLUSTER := $(E2E_DIR)/cluster
# The project venv (make setup) has pytest and the project installed.
E2E_PYTHON ?= $(if $(VENV),$(VENV)/bin/python,python3)
E2E_PYTEST_ARGS ?=
E2E_LOGS_DIR ?= $(CURDIR)/e2e-logs
E2E_SUDO := $(if $(or $(filter 0,$(shell id -u)),$(filter kind,$(E2E_PROVIDER))),,sudo --preserve-env=E2E_PROVIDER,E2E_CACHE,E2E_STATE,E2E_PG_PORT)

.PHONY: e2e e2e-scale cluster-up cluster-down cluster-status cluster-logs

cluster-up:
	$(E2E_SUDO) $(E2E_CLUSTER) up

cluster-down:
	$(E2E_SUDO) $(E2E_CLUSTER) down

cluster-status:
	$(E2E_SUDO) $(E2E_CLUSTER) status

cluster-logs:
	$(E2E_SUDO) $(E2E_CLUSTER) logs $(E2E_LOGS_DIR)

e2e: $(if $(VENV),setup) cluster-up
	@$(E2E_PYTHON) -m pytest $(if $(filter $(E2E_DIR)/%,$(E2E_PYTEST_ARGS)),,$(E2E_DIR)) -m e2e --durations=0 $(E2E_PYTEST_ARGS) || { \
		status=$$?; \
		echo "e2e scenarios failed (exit $$status); gathering logs into $(E2E_LOGS_DIR)"; \
		$(E2E_SUDO) $(E2E_CLUSTER) logs $(E2E_LOGS_DIR) >/dev/null || true; \
		exit $$status; }

# The scale bench on a simulated cluster (README "Scale (simulated cluster)").
# SCALE=full: 1, 100, 1000 running executions + 10 fan-outs of 1000 partitions;
# SCALE=small: 1, 20, 100 + one fan-out of 100. SCALE_ARGS adds bench options.
KWOK_NODES ?= 200
SCALE ?= full
SCALE_ARGS ?=
SCALE_SIZES_full := --sizes 1,100,1000 --fanouts 10 --partitions 1000
SCALE_SIZES_small := --sizes 1,20,100 --fanouts 1 --partitions 100

e2e-scale: $(if $(VENV),setup) cluster-up
	$(E2E_SUDO) $(E2E_CLUSTER) kwok-up $(KWOK_NODES)
	$(E2E_SUDO) $(E2E_CLUSTER) scale-db-up
	@status=0; $(E2E_SUDO) $(E2E_PYTHON) bench/operator_scale.py $(SCALE_SIZES_$(SCALE)) $(SCALE_ARGS) || status=$$?; \
		$(E2E_SUDO) $(E2E_CLUSTER) scale-db-down; \
		$(E2E_SUDO) $(E2E_CLUSTER) kwok-down; \
		exit $$status
