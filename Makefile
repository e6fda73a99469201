# The README's two quick-start commands are `make run` and `make test`; both set up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint bench clean

setup: $(VENV)/.installed
	$(BIN)/ajuste models pull

# Re-installs only when pyproject.toml changes; pip reuses its cached llama-cpp-python wheel.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	# torch first, pinned: the CPU wheel (a looser requirement can pull a CUDA build of GBs)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,finetune]'
	touch $@

run: setup
	$(BIN)/ajuste index examples/knowledge
	$(BIN)/ajuste serve

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot retrieval finetune

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m bench --write docs/performance.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
