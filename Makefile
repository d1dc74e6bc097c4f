# econe — common tasks. `make test` installs what it needs on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# molecule and ansible find their helpers (ansible-config, podman's plugin...) on PATH
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test unit molecule lint bench clean

$(BIN)/onelite: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/onelite

run: install
	$(BIN)/python -m econe.devrun

test: unit molecule

unit: install
	$(BIN)/pytest -q

molecule: install
	bash molecule/run.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint -q

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run
