# garde: every target sets up .venv itself, so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench clean

$(STAMP): pyproject.toml setup.py src/garde/gateway/_plane.c
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "garde needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e ".[postgres]" --group dev
	touch $(STAMP)

# A second SOAP stack for the real-client tests (tests/clients/): node-soap, from the lock file.
# Without Node.js the tests skip, except in CI, where they fail.
NODE_CLIENT := tests/clients/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed

$(NODE_STAMP): $(NODE_CLIENT)/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(NODE_CLIENT) --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "npm not found: the node-soap client test will be skipped (install nodejs and npm)"; fi

# A third, Java's JAX-WS (Metro), comes from Debian (`apt-get install jaxws libjaxws-java`
# and a JDK; .ci/run installs them): its test generates and compiles the client from the
# WSDL the gateway serves, so there is nothing to build here.

demo: $(STAMP)
	$(VENV)/bin/garde demo

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_CLIENT)/node_modules
