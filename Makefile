# Two commands do all set-up on a fresh machine:
#   make test        create .venv if needed, install everything, run the test suite
#   make quickstart  same set-up, then the whole pipeline at toy scale on the embedded servers (CPU)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Which torch 2.13.0 build to install. Empty (the default): whatever pip resolves from its configured index; on Linux
# plain PyPI serves the CUDA build (GBs more, useless without a GPU). The CPU-only build:
#   make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# a given CUDA build: TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
TORCH_INDEX_URL ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test quickstart bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	@echo "installing torch 2.13.0 from $(or $(TORCH_INDEX_URL),pip's configured index (set TORCH_INDEX_URL to choose the build; see the top of the Makefile))"
	$(BIN)/pip install torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

quickstart: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/quickstart.sh

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
