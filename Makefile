# Set-up and entry points. `make run` and `make test` work on a fresh machine: they create .venv,
# install the pinned requirements (torch 2.13.0 CPU first) and, for tests, Debian's Chromium.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-ray.txt | cksum | cut -d' ' -f1)

.PHONY: run test bench browser venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-ray.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

## Run the app on the bundled demo gallery (builds its index on first start) at http://127.0.0.1:7860
run: $(STAMP)
	$(BIN)/python app.py

## Run the whole test suite (unit, jobs, live server, headless Chromium)
test: $(STAMP) browser
	$(BIN)/python -m pytest

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
