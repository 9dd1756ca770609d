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

.PHONY: e2e cluster-up cluster-down cluster-status cluster-logs

cluster-up:
	$(E2E_SUDO) $(E2E_CLUSTER) up

cluster-down:
	$(E2E_SUDO) $(E2E_CLUSTER) down

cluster-status:
	$(E2E_SUDO) $(E2E_CLUSTER) status

cluster-logs:
	$(E2E_SUDO) $(E2E_CLUSTER) logs $(E2E_LOGS_DIR)

e2e: $(if $(VENV),setup) cluster-up
	@$(E2E_PYTHON) -m pytest $(if $(filter $(E2E_DIR)/%,$(E2E_PYTEST_ARGS)),,$(E2E_DIR)) -m e2e $(E2E_PYTEST_ARGS) || { \
		status=$$?; \
		echo "e2e scenarios failed (exit $$status); gathering logs into $(E2E_LOGS_DIR)"; \
		$(E2E_SUDO) $(E2E_CLUSTER) logs $(E2E_LOGS_DIR) >/dev/null || true; \
		exit $$status; }
