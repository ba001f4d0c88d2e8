# One command set for people and CI: install, demo, test, lint, typecheck, bench.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed
CONFIG ?= examples/support/agenthost.toml

.PHONY: install demo demo-scripted test lint typecheck format pytest bench bench-gateway lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(UV) pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	# Byte-compiled now, because environments with PYTHONDONTWRITEBYTECODE=1 would otherwise
	# compile every module from source at each start (seconds per `agenthost serve`).
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

## install: create .venv with the locked dependencies (all extras, dev tools) and agenthost itself
install: $(STAMP)

## demo: serve the example support agent (local model when no provider key is set)
## (a random admin key is written once to .agenthost/admin-key; send it as X-API-Key)
demo: install
	@mkdir -p .agenthost
	@test -s .agenthost/admin-key || (umask 077; $(BIN)/python -c "import secrets; print('admin-' + secrets.token_urlsafe(32))" > .agenthost/admin-key)
	@echo "admin key: .agenthost/admin-key  (export AGENTHOST_API_KEY=\$$(cat .agenthost/admin-key))"
	AGENTHOST_AUTH__ADMIN_KEY_FILE=.agenthost/admin-key $(BIN)/agenthost serve --config $(CONFIG)

## demo-scripted: the same agent against agenthost's mock LLM playing examples/support/mock-llm.yaml
## (no key, no model download: shows tool calls, approvals, fork and resume with scripted answers)
demo-scripted: install
	@mkdir -p .agenthost
	@test -s .agenthost/admin-key || (umask 077; $(BIN)/python -c "import secrets; print('admin-' + secrets.token_urlsafe(32))" > .agenthost/admin-key)
	@echo "admin key: .agenthost/admin-key  (export AGENTHOST_API_KEY=\$$(cat .agenthost/admin-key))"
	AGENTHOST_AUTH__ADMIN_KEY_FILE=.agenthost/admin-key $(BIN)/agenthost serve \
		--config examples/support/agenthost.scripted.toml --mock-llm examples/support/mock-llm.yaml

## test: lint, type checks and the whole test suite
test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

typecheck: install
	$(BIN)/mypy

# Three workers on two cores: most test time is spent waiting on subprocess servers.
# tests/browser drive Debian's chromium with playwright (never a downloaded browser).
pytest: install
	command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)
	$(BIN)/pytest -n 3 --durations=15

## bench: run the benchmarks and print their tables
bench: install
	$(BIN)/python bench/run_overhead.py
	$(BIN)/python bench/durability.py

## bench-gateway: passthrough overhead vs the mock and LiteLLM proxy (wrk; ~4 min, installs wrk if absent)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench-gateway: install
	command -v wrk >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk)
	$(BIN)/python bench/gateway_overhead.py $(BENCH_ARGS)

## lock: re-resolve requirements.lock after editing pyproject.toml
lock:
	$(UV) pip compile pyproject.toml --all-extras --group dev --generate-hashes --override overrides.txt \
		--python-version 3.11 --universal -o requirements.lock

clean:
	rm -rf $(VENV) .agenthost .pytest_cache .mypy_cache .ruff_cache
