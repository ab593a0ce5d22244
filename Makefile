# LLM Portal: `make run` starts the portal, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist; each test file stays in one; 0: the suite in this process). Three take ~10 min on
# 2 cores instead of ~16, but CPU-heavy tests (tiny training runs) then starve page tests' timeouts now and
# then; one process is the default until those are tamed.
TEST_WORKERS ?= 0

.PHONY: install run test lint browser bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) main.py

# The browser tests drive Debian's chromium (with a CJK font for the Chinese screenshots); install them when
# missing and we may (root with apt-get).
browser:
	@if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wqy; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; \
	else echo "chromium not found: browser tests will be skipped"; fi

test: install browser
	$(PY) -m ruff check .
	$(PY) -m mypy backend ui pages main.py jobs
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy backend ui pages main.py jobs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
