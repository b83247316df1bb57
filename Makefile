# Two commands on a fresh machine with python3 and make: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

# Refuses an old Python in one line before a .venv exists (pip would fail half-way, leaving a broken one).
# Expanded only by the recipes that create the venv, so `make clean` works with any Python.
python_version = $(or $(shell ($(PYTHON) -V) 2>&1 | grep '^Python'),not installed)
python_new_enough = $(shell ($(PYTHON) -c 'import sys; print(sys.version_info >= (3, 11))') 2>/dev/null)
python_ok = $(if $(filter True,$(python_new_enough)),,$(error kbbot needs Python 3.11 or newer; \
  $(PYTHON) is $(python_version) (run: make PYTHON=python3.11)))

.PHONY: run chat test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(python_ok)
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(PIP) install -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml
	$(python_ok)
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(PIP) install -e '.[dev,redis]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed ## start every configured adapter (terminal chat when nothing is configured)
	$(VENV)/bin/kbbot run

chat: $(VENV)/.installed ## terminal chat
	$(VENV)/bin/kbbot chat

# Two workers per core: most tests wait on local servers, subprocesses and timers rather than compute (at one per
# core the CPUs sat half idle), so a second worker per core fills those waits (2 cores: 95 s -> 72-77 s).
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(2 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2))' 2>/dev/null || echo 4)

test: $(VENV)/.dev-installed ## the whole suite, two workers per core; TEST_WORKERS=N to choose
	$(PY) -m pytest -q -n $(TEST_WORKERS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check kbbot tests benchmarks
	$(VENV)/bin/mypy

# The answer benchmark's extras: the BM25 peer (pip) and a real corpus, Debian's python3-doc. Either one
# missing is skipped by the benchmark with a message saying how to get it.
$(VENV)/.bench-installed: $(VENV)/.dev-installed
	$(PIP) install -e '.[dev,redis,bench]' || echo "bench: could not install the [bench] extra; the BM25 peer is skipped"
	@[ -d /usr/share/doc/python3-doc/html/library ] \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-doc >/dev/null 2>&1; } \
	  || echo "bench: python3-doc is not installed (apt-get install python3-doc); the real-corpus set is skipped"
	touch $@

bench: $(VENV)/.bench-installed ## benchmarks, table + benchmarks/results.json
	$(PY) -m benchmarks

# Build and tool caches only: never a data folder (saved pages, queued saves), wherever KBBOT_DATA_DIR points.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
