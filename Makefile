# Every target creates the virtual environment it needs from this repo's own files.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test check lint typecheck vectors clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

demo: $(BIN)/.installed      ## the main job: five daemons on 127.0.0.1, trades, a fork, a verified proof
	$(BIN)/shinyo demo

test: $(BIN)/.installed      ## the test suite with protocol/ coverage
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90

lint: $(BIN)/.installed
	$(BIN)/ruff check protocol node tools tests

# mypy cannot follow the editable install's folder-to-package mapping, so it
# checks a tree of symlinks laid out as the installed package.
TYPECHECK_TREE := build/typecheck
typecheck: $(BIN)/.installed
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/shinyo
	ln -s $(CURDIR)/protocol/*.py $(CURDIR)/protocol/py.typed $(TYPECHECK_TREE)/shinyo/
	ln -s $(CURDIR)/node $(TYPECHECK_TREE)/shinyo/node
	ln -s $(CURDIR)/tools $(TYPECHECK_TREE)/shinyo/tools
	cd $(TYPECHECK_TREE) && MYPYPATH=. $(CURDIR)/$(BIN)/mypy --strict \
	    --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache -p shinyo

check: test lint typecheck

vectors: $(BIN)/.installed   ## regenerate spec/vectors/*.json (deterministic)
	$(BIN)/python -m shinyo.tools.gen_vectors spec/vectors

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .coverage
