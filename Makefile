# Two commands do all set-up on a fresh machine:
#   make test        create .venv if needed, install everything, run the test suite
#   make quickstart  same set-up, then the whole pipeline at toy scale on the embedded servers (CPU)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test quickstart bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
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
