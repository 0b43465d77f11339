# Two commands do all set-up on a fresh machine (README.md):
#   make run   - install, then run the default family through the notebooks, headless, on CPU
#   make test  - install, then run the whole test suite (what .ci/run calls)
# Re-running is fast: the virtual environment is rebuilt only when pyproject.toml or this file changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FAMILY ?= wan_t2v

.PHONY: install run test

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel on disk; nothing may pull another torch.
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,lab,ray]' torch==2.13.0
	# The browser test (tests/notebooks/test_browser.py) drives Debian's chromium through Playwright.
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/workbench run $(FAMILY)

test: install
	$(BIN)/python -m pytest -n 2
