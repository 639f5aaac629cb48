# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON313 ?= $(shell pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13
UV := $(PYTHON313) -m uv
export UV_PYTHON := $(PYTHON313)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint sync bench-engine bench-service bench-load bench-store

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
