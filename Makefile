# Developer entry points. `make test` needs only Python: PostgreSQL and Redis are embedded by the fixtures.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
PIP_FLAGS := --disable-pip-version-check --no-input
ARGS ?=

# Lint failures fail `make test` (LINT_FATAL=0 reports them without failing, for work in progress).
LINT_FATAL ?= 1

# Servers `make test-system` runs the integration and end-to-end suites against.
SYSTEM_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
SYSTEM_REDIS_URL ?= redis://127.0.0.1:6379/0
SYSTEM_TEST_DIRS := $(wildcard tests/integration tests/e2e)

.DEFAULT_GOAL := test
.PHONY: .venv up test lint format test-system clean chromium dovecot deploy-tools

# The browser tests (tests/browser) drive Debian's Chromium through Playwright; Playwright's own browser
# download is not used. Installed here when missing and running as root (CI); otherwise those tests skip.
CHROMIUM ?= /usr/bin/chromium

.venv: $(STAMP)

# Reinstalled only when pyproject.toml changes. `make test` and `make lint` need the dev extras (pytest, mypy,
# Playwright, ...); `make up` only runs the product and installs the runtime dependencies alone (a venv that
# already has the dev extras, installed since pyproject.toml last changed, has them too).
# uv installs the packages in seconds where pip needs most of a minute; pip is the fallback wherever uv cannot
# (a package index configured for pip only, no uv wheel for the platform).
INSTALL = { $(BIN)/pip install $(PIP_FLAGS) -q uv && $(BIN)/uv pip install --python $(BIN)/python $(1); } || \
	{ echo "uv could not install: using pip"; $(BIN)/pip install $(PIP_FLAGS) $(1); }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(call INSTALL,-e '.[dev]')
	touch $@

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then echo "runtime dependencies already installed"; \
	else $(call INSTALL,-e .); fi
	touch $@

up: $(RUNTIME_STAMP)
	$(BIN)/exekra up $(ARGS)

lint: $(STAMP)
	@status=0; \
	$(BIN)/ruff check src tests || status=1; \
	$(BIN)/ruff format --check src tests || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

chromium:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "*** $(CHROMIUM) is missing: browser tests will be skipped (apt-get install -y chromium)" >&2; fi; }

# email.read is tested against a private Dovecot (tests/activities/mailservers.py); only the binary is needed,
# the tests start their own instance. Installed here when missing and running as root; otherwise those tests skip.
DOVECOT ?= /usr/sbin/dovecot

dovecot:
	@test -x $(DOVECOT) || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd; \
		else echo "*** $(DOVECOT) is missing: IMAP tests will be skipped (apt-get install -y dovecot-imapd)" >&2; fi; }

# deploy/ is checked with `haproxy -c` and `systemd-analyze verify` (tests/deploy). Installed here when missing and
# running as root; otherwise those two checks skip and the files are still read and checked by the tests.
deploy-tools:
	@command -v haproxy >/dev/null && command -v systemd-analyze >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy systemd; \
		else echo "*** haproxy or systemd-analyze is missing: those deploy checks will be skipped" >&2; fi; }

# `make test` and `make test-system` run the suite in this many pytest-xdist processes, whole test files to each
# (a module's fixtures, such as its hub processes, start once); 0 runs it in make's own process.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP) chromium dovecot deploy-tools
	@$(MAKE) --no-print-directory lint || { \
		if [ "$(LINT_FATAL)" = 1 ]; then exit 1; fi; \
		echo "*** lint failed (not fatal while LINT_FATAL=0; fix it before committing)" >&2; }
	$(BIN)/pytest -q $(XDIST)

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

test-system: $(STAMP)
	@test -n "$(SYSTEM_TEST_DIRS)" || { echo "no tests/integration or tests/e2e directory" >&2; exit 1; }
	EXEKRA_TEST_DATABASE_URL=$(SYSTEM_DATABASE_URL) EXEKRA_TEST_REDIS_URL=$(SYSTEM_REDIS_URL) \
		$(BIN)/pytest -q $(XDIST) $(SYSTEM_TEST_DIRS)

# Fault injection with real processes (tests/e2e/test_chaos.py): minutes long, so not part of `make test`.
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos tests/e2e

# The same on a cluster of hosts made of network namespaces (tests/cluster): three hubs behind HAProxy, PostgreSQL
# primary + standby, Redis + three Sentinels, runner hosts; 3,000 executions while the leader hub is killed, a hub's
# link goes down, Redis fails over and PostgreSQL is promoted. Root, iproute2 and haproxy (`make deploy-tools`).
.PHONY: chaos-cluster
chaos-cluster: $(STAMP) deploy-tools
	$(BIN)/pytest -q -s -m chaos_cluster tests/cluster $(ARGS)

# The API fuzz gate at length (tests/e2e/test_api_fuzz.py): `make test` sends 4 valid and 4 invalid requests per
# operation and role, this many more (FUZZ_EXAMPLES each).
FUZZ_EXAMPLES ?= 200
.PHONY: fuzz
fuzz: $(STAMP)
	EXEKRA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q tests/e2e/test_api_fuzz.py

# Benchmarks (issue 8, docs/benchmarks.md), e.g. `make bench ARGS="--quick pickup"`.
BENCH_STAMP := $(VENV)/.installed-bench
comma := ,
.PHONY: bench
$(BENCH_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(call INSTALL,-e '.[dev$(comma)bench]')
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)

# Studio, the dashboard's workflow designer (frontend/), built into the package's static folder. The built
# files are committed, so only a change to frontend/ needs Node.js (20.19+) and this target. axe-core, which
# the browser tests inject, is vendored from the same lock file.
STUDIO_DIR := src/exekra/hub/dashboard/static/studio
.PHONY: studio
studio:
	cd frontend && npm ci --no-audit --no-fund && npm run build
	cp frontend/node_modules/axe-core/axe.min.js tests/browser/vendor/axe.min.js
	cp frontend/node_modules/axe-core/LICENSE tests/browser/vendor/axe-core.LICENSE

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +
