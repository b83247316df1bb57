# Two commands on a fresh machine with python3 and make: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run chat test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -e '.[dev,redis]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed ## start every configured adapter (terminal chat when nothing is configured)
	$(VENV)/bin/kbbot run

chat: $(VENV)/.installed ## terminal chat
	$(VENV)/bin/kbbot chat

test: $(VENV)/.dev-installed ## the whole suite
	$(PY) -m pytest -q

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check kbbot tests benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.dev-installed ## benchmarks, table + benchmarks/results.json
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .kbbot .pytest_cache .mypy_cache .ruff_cache
