# Two commands: `make run` sets everything up and runs the daemon on config.yaml;
# `make test` sets everything up and runs every test (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test setup lint demo clean

$(BIN)/uproar: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/uproar
	@# Headless chromium for the dashboard's browser test (it skips when missing).
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && ! command -v chromedriver >/dev/null; then \
		apt-get install -y chromium chromium-driver >/dev/null 2>&1 \
		|| echo "chromium not installed: tests/test_dashboard_browser.py will skip"; fi

run: setup
	$(BIN)/uproar run -c $(CONFIG)

demo: setup
	$(BIN)/uproar replay monitor/demo/larkspur-cello.jsonl -c monitor/demo/config.yaml --instant

lint: setup
	$(BIN)/ruff check .

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
