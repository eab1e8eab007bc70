# Two commands: `make run` sets everything up and runs the daemon on config.yaml;
# `make test` sets everything up and runs every test (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test setup lint demo clean browser-deps dist

$(BIN)/uproar: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Everything `run`, `test` and `demo` need lives in .venv/; nothing outside the project changes.
setup: $(BIN)/uproar

# Opt-in, changes the system: Debian's headless chromium and its driver for the dashboard's
# browser tests (they skip, naming this target, until it has run).
browser-deps:
	apt-get install -y chromium chromium-driver

run: setup
	$(BIN)/uproar run -c $(CONFIG)

# The demo's archive (archive.url of monitor/demo/config.yaml) is made afresh, then kept to look at.
demo: setup
	rm -f uproar-demo.db uproar-demo.db-wal uproar-demo.db-shm
	$(BIN)/uproar replay monitor/demo/larkspur-cello.jsonl -c monitor/demo/config.yaml --instant

# The wheel to install elsewhere (README: "Running under systemd"): dist/uproar-*.whl, with the
# bundled model inside; pip installs its dependencies (torch==2.13.0 first, for the CPU build).
dist: setup
	rm -rf dist build
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls dist/*.whl

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports  # the dependency rules of pyproject.toml (docs/ARCHITECTURE.md)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache dist build
