# `make train` and `make test` work on a fresh machine: the first run creates .venv and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Offline MNIST: the four .gz files; defaults to ../shared/datasets/mnist when that folder exists.
MNIST_OFFLINE_DIR ?= $(abspath $(wildcard ../shared/datasets/mnist))
export MNIST_OFFLINE_DIR
ARGS ?=

.PHONY: install train test test-all tb lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,export]"
	touch $@

install: $(STAMP)

train: $(STAMP)  ## train the default model; extra overrides: make train ARGS="trainer.max_epochs=1"
	$(BIN)/python -m src.train $(ARGS)

test: $(STAMP)  ## the fast suite, between edits: the slow tests (long runs, subprocesses) left out
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-all: $(STAMP)  ## every test, as CI runs them
	$(BIN)/python -m pytest $(ARGS)

tb: $(STAMP)
	$(BIN)/tensorboard --logdir logs

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

clean:
	rm -rf logs outputs multirun lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
