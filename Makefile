# Everything a fresh clone needs: `make demo` and `make test` build the venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve-demo test lint bench soak clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Rehearsals against the local fake call nobody: they lift the legal calling-hours floor (its
# shim, tests/floor_lift, is what the test suite uses too) so they work at any hour. A run
# against Tabbly has no way to lift it.
REHEARSAL := PYTHONPATH=tests/floor_lift

demo: $(STAMP)
	$(REHEARSAL) $(BIN)/python -m dialer.commands.demo

# The web page against a local fake Tabbly: prints the one URL to open and its token.
serve-demo: $(STAMP)
	$(REHEARSAL) $(BIN)/python -m dialer demo --page

# Three workers on two cores: many tests wait on child processes and sockets, so a third
# worker fills that time (about 125 s against 160 s with two, the same CPU).
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 3

# The web page's end-to-end test drives Debian's Chromium (Playwright cannot download one here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed (sudo apt-get install chromium); the browser test will be skipped"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check dialer tests bench
	$(BIN)/ruff format --check dialer tests bench

bench: $(STAMP)
	$(REHEARSAL) $(BIN)/python -m bench

# 30 kill -9 at random moments, each followed by a rerun: nobody called twice, no row lost.
# Then 10 minutes of the outcome loop (redial, limits, shared numbers, kills, lost -wal files),
# judged by the fake's record: no rule of [redial] or [limits] broken.
soak: $(STAMP)
	$(REHEARSAL) $(BIN)/python -m bench.soak
	$(REHEARSAL) $(BIN)/python -m bench.soak_redial --minutes 10

clean:
	rm -rf $(VENV) reports state .pytest_cache
