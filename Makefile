# The newcomer's contract: `make demo` and `make test` work on a fresh clone.
# Both create .venv if missing and install every distribution in this repo
# (core and each plugins/*/ with a pyproject.toml) in editable mode.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PLUGINS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
# Distributions outside plugins/ (they are not backends).
EXTRAS  := conveyor-django
SOURCES := core/src $(addsuffix /src,$(PLUGINS)) $(addsuffix /src,$(EXTRAS))
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest test-django6 soak bench mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml core/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS) $(EXTRAS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --group dev -e ./core $(addprefix -e ./,$(PLUGINS) $(EXTRAS))
	touch $(STAMP)

# The CLI on the embedded default (a JSON store in a temporary folder): push
# 10,000 tasks, drain them with a worker, print the stats.
demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo_cli.sh

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy $(SOURCES)

pytest: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test: lint typecheck pytest test-django6

# Django 6 needs Python 3.12 or later, so conveyor-django's tests run a second time
# in a venv of their own (cached; .venv runs them on the django-tasks backport).
# PYTHON312: python3.12 if it runs, else pyenv's. Without one the run is skipped
# with the reason, except under CI=true, where that fails.
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
  "$$p" -c "import sys" >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
DJ6_VENV  := .venv-django6
DJ6_PY    := $(DJ6_VENV)/bin/python
DJ6_STAMP := $(DJ6_VENV)/.installed

$(DJ6_STAMP): conveyor-django/pyproject.toml core/pyproject.toml plugins/json/pyproject.toml plugins/redis/pyproject.toml
	test -x $(DJ6_PY) || $(PYTHON312) -m venv $(DJ6_VENV)
	$(DJ6_PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(DJ6_PY) -m pip install --quiet "django>=6,<7" "pytest>=8" "pytest-asyncio>=0.24" \
	  -e ./core -e ./plugins/json -e ./plugins/redis -e ./conveyor-django
	touch $@

test-django6:
	@if [ -z "$(PYTHON312)" ]; then \
	  if [ "$$CI" = "true" ]; then \
	    echo "test-django6: no Python 3.12 found (Django 6 needs it) and CI=true: failing"; exit 1; \
	  fi; \
	  echo "test-django6: SKIPPED: no Python 3.12 on this machine (Django 6 needs >= 3.12);" \
	    "set PYTHON312=/path/to/python3.12"; \
	else \
	  $(MAKE) --no-print-directory $(DJ6_STAMP) && \
	  $(DJ6_PY) -m pytest -q -p no:cacheprovider conveyor-django/tests; \
	fi

# Benchmarks run in their own environment: peers (huey, dramatiq, saq, taskiq)
# are never a dependency of any distribution.
BENCH_VENV := bench/.venv
BENCH_PY   := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): bench/requirements.txt core/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(BENCH_PY) -m pip install --quiet -r bench/requirements.txt -e ./core $(addprefix -e ./,$(PLUGINS))
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	set -e; for script in bench/bench_*.py; do $(BENCH_PY) $$script; done
	$(BENCH_PY) bench/plot.py

# Mutation testing, not part of `make test` (it runs a target's tests once per
# mutant: tens of minutes). cosmic-ray lives in its own environment; the tests run
# in .venv. See docs/mutation.md. `make mutation MUTATION_ARGS="--fraction 0.3"`
# measures a fixed sample first.
MUTATION_VENV  := build/mutation/venv
MUTATION_PY    := $(MUTATION_VENV)/bin/python
MUTATION_STAMP := $(MUTATION_VENV)/.installed
MUTATION_TARGETS ?= memory rules
MUTATION_ARGS ?= --workers 2

$(MUTATION_STAMP): scripts/mutation-requirements.txt
	test -x $(MUTATION_PY) || $(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_PY) -m pip install --quiet -r scripts/mutation-requirements.txt
	touch $(MUTATION_STAMP)

mutation: $(STAMP) $(MUTATION_STAMP)
	nice -n 19 $(MUTATION_PY) scripts/mutation.py $(MUTATION_TARGETS) $(MUTATION_ARGS)

soak: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(DJ6_VENV) .mypy_cache .pytest_cache .ruff_cache
