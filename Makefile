# Set-up and entry points. `make run` and `make test` work on a fresh machine: they create .venv,
# install the pinned requirements (torch 2.13.0 CPU first), the project itself (editable) and, for
# tests, Debian's Chromium.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-ray.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-fast bench browser venv clean

venv: $(STAMP)

# The project is installed editable: the repository root goes on the venv's path (see pyproject.toml),
# so bench/ scripts import covr_core, precompute and tests.helpers without editing sys.path.
$(STAMP): requirements.txt requirements-dev.txt requirements-ray.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

## Run the app on the bundled demo gallery (builds its index on first start) at http://127.0.0.1:7860
run: $(STAMP)
	$(BIN)/python app.py

## Run the whole test suite (unit, jobs, live server, headless Chromium); CI runs this
test: $(STAMP) browser
	$(BIN)/python -m pytest

## The fast lane: no live server, no browser, no slow (multi-second) tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not browser and not live and not slow"

## Debian's Chromium + ChromeDriver for the browser tests (installed only when missing)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver >/dev/null; fi; }

## Benchmarks: one JSON line per case (see docs/PERFORMANCE.md)
bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache test-output
