# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON313 ?= $(shell pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13
UV := $(PYTHON313) -m uv
export UV_PYTHON := $(PYTHON313)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint sync bench-engine bench-service bench-load bench-store bench-campaign audit

sync:
	@$(PYTHON313) -m uv --version >/dev/null 2>&1 || $(PYTHON313) -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

run: sync
	$(UV) run --frozen order-generation serve

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

test: lint
	$(UV) run --frozen pytest

bench-engine: sync
	$(UV) run --frozen python -m bench.engine

bench-service: sync
	$(UV) run --frozen python -m bench.service $(ARGS)

bench-load: sync
	$(UV) run --frozen python -m bench.load $(ARGS)

bench-store: sync
	$(UV) run --frozen python -m bench.store $(ARGS)

bench-campaign: sync
	$(UV) run --frozen python -m bench.campaign $(ARGS)

# Known vulnerabilities in every locked dependency (dev tools included), looked up on PyPI's
# advisory data. --strict fails when a package could not be looked up, so an audit that
# checked nothing never passes.
PIP_AUDIT_VERSION := 2.10.1
audit:
	@$(PYTHON313) -m uv --version >/dev/null 2>&1 || $(PYTHON313) -m pip install --quiet uv
	$(UV) export --frozen --format requirements-txt --no-emit-project --quiet \
	  | $(UV) tool run --from pip-audit==$(PIP_AUDIT_VERSION) pip-audit \
	    --strict --disable-pip --progress-spinner off --requirement /dev/stdin
