# opsdash developer tasks. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

.PHONY: help install demo test lint typecheck check bench prometheus screenshots docs clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install opsdash with its dev tools

demo: $(STAMP) ## Set up and open the dashboard on the built-in BetaSkill demo
	$(BIN)/opsdash demo

test: $(STAMP) ## Set up and run the test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff, and the import-linter layer contracts
	$(BIN)/ruff check opsdash tests benchmarks scripts
	$(BIN)/ruff format --check opsdash tests benchmarks scripts
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy (strict) over the package
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

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
