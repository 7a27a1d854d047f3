# opsdash developer tasks. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements/dev.txt
# Both cores: most of the suite's time is waiting on servers and subprocesses, not computing.
WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(WORKERS) --durations=25
# The tests that hold opsdash against other people's libraries (webhooks, SARIF, JSON Schema)
PARITY := tests/unit/core/test_webhooks_parity.py tests/unit/cli/test_formats.py \
	tests/unit/cli/test_json_schemas.py tests/unit/cli/test_docs.py
# The tests whose timing a loaded machine disturbs: the dashboard, runbook processes, serve, audit
STRESSED := tests/tui tests/unit/core/runbooks tests/unit/ops/test_serve.py tests/unit/cli/test_audit.py \
	tests/unit/cli/test_check.py tests/unit/core/audit/test_log.py

# The runbook tests whose state changes a loaded machine used to outrun (running state, quitting
# during a command): run RUNS times in a row under stress-ng
RUNBOOK_STRESSED := "tests/tui/test_runbooks_pane.py::test_a_running_command_cannot_be_started_again" \
	"tests/tui/test_runbooks_pane.py::test_quitting_during_a_command_asks_and_its_result_is_recorded"
RUNS ?= 20
STRESS_CPU ?= 4

.DEFAULT_GOAL := help

.PHONY: help install demo test test-stress test-runbooks-stress lint typecheck check bench prometheus screenshots docs lock upgrade-deps webhook-drift torture clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# Every tool and library the tests use comes from the lock, checked against its hashes, so a fresh
# clone next month installs what passed CI today. opsdash itself goes in editable, built by the
# locked hatchling (no build isolation: nothing unpinned is fetched).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

install: $(STAMP) ## Create .venv and install opsdash with its dev tools

demo: $(STAMP) ## Set up and open the dashboard on the built-in BetaSkill demo
	$(BIN)/opsdash demo

test: $(STAMP) ## Set up and run the test suite (both cores; the 25 slowest tests listed)
	$(PYTEST)

test-stress: $(STAMP) ## The dashboard, runbook and process tests while stress-ng loads every core
	@command -v stress-ng >/dev/null || { echo "make test-stress needs stress-ng (apt-get install stress-ng)"; exit 3; }
	stress-ng --cpu 4 --timeout 1800s --quiet & pid=$$!; \
	$(PYTEST) -p no:randomly $(STRESSED); status=$$?; kill $$pid; wait $$pid 2>/dev/null; exit $$status

test-runbooks-stress: $(STAMP) ## The runbook running-state and quit-during-a-command tests, RUNS (20) times in a row under stress-ng
	@command -v stress-ng >/dev/null || { echo "make test-runbooks-stress needs stress-ng (apt-get install stress-ng)"; exit 3; }
	stress-ng --cpu $(STRESS_CPU) --timeout 3600s --quiet & pid=$$!; status=0; passed=0; \
	for run in $$(seq $(RUNS)); do \
		$(BIN)/python -m pytest -n 0 -p no:randomly -q $(RUNBOOK_STRESSED) || { status=1; break; }; \
		passed=$$run; \
	done; kill $$pid; wait $$pid 2>/dev/null; echo "$$passed of $(RUNS) runs in a row passed under stress-ng --cpu $(STRESS_CPU)"; exit $$status

lint: $(STAMP) ## ruff, and the import-linter layer contracts
	$(BIN)/ruff check opsdash tests benchmarks scripts
	$(BIN)/ruff format --check opsdash tests benchmarks scripts
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy (strict) over the package and its tests
	$(BIN)/mypy

check: lint typecheck test ## What CI checks: lint, types, tests

bench: $(STAMP) ## Run the benchmarks (prints figures and ratios)
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/health_sweep.py
	$(BIN)/python benchmarks/audit_tail.py
	$(BIN)/python benchmarks/audit_verify.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/history.py
	$(BIN)/python benchmarks/serve.py

prometheus: $(STAMP) ## opsdash serve with real Prometheus + Alertmanager (needs the Debian packages)
	$(BIN)/python scripts/prometheus_integration.py
	$(BIN)/python scripts/metrics_vs_blackbox.py

screenshots: $(STAMP) ## Regenerate screenshots/*.svg from the fixed sample data
	$(BIN)/python scripts/screenshots.py

docs: $(STAMP) ## Regenerate docs/troubleshooting.md, docs/configuration.md and docs/schemas/ from the code
	$(BIN)/python scripts/gen_docs.py
	$(BIN)/python scripts/gen_schemas.py

torture: $(STAMP) ## Many opsdash processes and kill -9 on one data directory, 200 rounds (about 25 min)
	$(BIN)/python scripts/torture.py --rounds 200

lock: $(STAMP) ## Re-resolve the lock for the pins in pyproject.toml, keeping every version it can
	$(BIN)/pip-compile --quiet --extra dev --all-build-deps --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml

upgrade-deps: $(STAMP) ## Move the lock to the newest releases, install them, run the parity tests
	$(BIN)/pip-compile --quiet --upgrade --extra dev --all-build-deps --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	@git --no-pager diff --stat -- $(LOCK) || true
	$(BIN)/python -m pytest -n $(WORKERS) $(PARITY)

webhook-drift: $(STAMP) ## The webhook parity tests against the newest provider libraries (scratch venv; exit 1 on drift)
	$(BIN)/python scripts/webhook_drift.py

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
