# Quick start: `make demo` and `make test`; each creates .venv when missing and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint table benchmark gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python tools/model_table.py

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check backbones classification detection engine tools tests

table: demo

benchmark: $(VENV)/.installed
	$(BIN)/python tools/benchmark.py backbone

# On a lent GPU machine (no venv there: its python3 has torch); writes outputs/gpu_check.json.
gpu-check:
	python3 tools/gpu_check.py --out outputs/gpu_check.json

clean:
	rm -rf $(VENV) outputs .pytest_cache
