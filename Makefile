# The exact commands README and .ci/run use. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    := $(VENV)/.installed-run
DEV    := $(VENV)/.installed-dev

.PHONY: install run test test-fast lint contract bench bench-scenarios export-contract clean load-smoke browser postgres nginx

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What running needs (the base install: `sandbank serve`), and what testing needs (every extra
# and the tools). Installing the second satisfies the first.
$(RUN): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN)

$(DEV): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(DEV) $(RUN)

install: $(DEV)

## run: create .venv, install, start the simulator on 127.0.0.1:8080
run: $(RUN)
	$(BIN)/sandbank serve $(ARGS)

## browser: Debian's chromium for the console's browser tests (tests/e2e/test_console_browser.py).
## Idempotent; without root or apt it says why and the tests skip (Playwright's own browser
## download is never used).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "make browser: not root, cannot apt-get install chromium; the browser tests will skip"; \
	elif ! command -v apt-get >/dev/null; then echo "make browser: no apt-get here; the browser tests will skip"; \
	else (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
		|| echo "make browser: apt-get install chromium failed; the browser tests will skip"; fi

## postgres: Debian's PostgreSQL server binaries, for the tests and benchmarks on the shared store
## (bench/throwaway_pg.py starts a throwaway cluster from them). Idempotent; without root or apt
## it says why and the PostgreSQL tests skip.
postgres:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "make postgres: not root, cannot apt-get install postgresql; the PostgreSQL tests will skip"; \
	elif ! command -v apt-get >/dev/null; then echo "make postgres: no apt-get here; the PostgreSQL tests will skip"; \
	else (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
		|| echo "make postgres: apt-get install postgresql failed; the PostgreSQL tests will skip"; fi

## nginx: Debian's nginx binary, the load balancer of deploy/compose.shared.yaml, for the test that
## runs that deployment's nginx.shared.conf in front of two replicas. Unpacked into .venv/nginx
## (`apt-get download` + `dpkg -x`: no service is installed or started). Without apt it says why
## and that test skips.
nginx: $(VENV)/nginx/usr/sbin/nginx
$(VENV)/nginx/usr/sbin/nginx:
	@if ! command -v apt-get >/dev/null; then echo "make nginx: no apt-get here; the deployment test will skip"; \
	else d=$$(mktemp -d) && (cd $$d && apt-get download -qq nginx 2>/dev/null && dpkg -x nginx_*.deb $(CURDIR)/$(VENV)/nginx) \
		|| echo "make nginx: apt-get download nginx failed; the deployment test will skip"; rm -rf $$d; fi

## test: the whole suite (unit, API, contract, end-to-end, the console in headless Chromium)
test: $(DEV) browser postgres nginx
	$(BIN)/pytest $(PYTEST_ARGS)

## test-fast: everything but the suites marked slow
test-fast: $(DEV) postgres
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

## lint: ruff (lint + format check), mypy strict, the contract documents match the code and
## pass openapi-spec-validator and Redocly's recommended rules, and the docs site builds
lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/sandbank contract --check
	$(BIN)/python tools/lint_contracts.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## contract: the schemathesis contract suite (in-process, or CONTRACT_BASE_URL=...)
contract: $(DEV)
	$(BIN)/sandbank contract

## export-contract: regenerate contracts/*.yaml from the code
export-contract: $(DEV)
	$(BIN)/sandbank contract --export

## bench: simulator vs a bare ASGI ceiling on 127.0.0.1, printed side by side; the side-by-side
## table beside bare uvicorn, plain Starlette and Prism (bench/peers.py); then a 90-day
## clock advance over 10,000 captured orders (bench/advance.py, target < 10 s, peak memory); then
## kill -9 cycles under write load (bench/reliability.py: acknowledged writes, lost = 0); then the
## console and metrics' cost on POST /v1/checkouts with one SSE client (bench/console.py); then
## unrelated requests' latency at a 2-worker start and during a dump, export, advance (contention.py);
## then req/s with 1 and 2 workers on SQLite and on PostgreSQL, side by side (scaling.py); then
## the round trips of one POST on PostgreSQL (pg_round_trips.py); then a provider migration of
## 10,000 orders with 1 % of requests failing (migration.py: 0 duplicates, 0 lost)
bench: $(DEV) postgres
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/peers.py $(BENCH_PEERS_ARGS)
	$(BIN)/python bench/advance.py $(BENCH_ADVANCE_ARGS)
	$(BIN)/python bench/reliability.py $(BENCH_RELIABILITY_ARGS)
	$(BIN)/python bench/console.py $(BENCH_CONSOLE_ARGS)
	$(BIN)/python bench/contention.py $(BENCH_CONTENTION_ARGS)
	$(BIN)/python bench/scaling.py $(BENCH_SCALING_ARGS)
	$(BIN)/python bench/pg_round_trips.py
	$(BIN)/python bench/migration.py $(BENCH_MIGRATION_ARGS)

## bench-scenarios: the rehearsal catalogue at its default size: per-scenario wall time and
## simulated-to-wall ratio (target: all of it < 5 min on 2 cores; BENCH_SCENARIOS_ARGS=--fast)
bench-scenarios: $(DEV)
	$(BIN)/python bench/scenarios.py $(BENCH_SCENARIOS_ARGS)

clean:
	rm -rf $(VENV) .sandbank .pytest_cache .mypy_cache .ruff_cache .hypothesis

## load-smoke: 20 s of load through the reference integration, steady/outage/storm/recovery
## (what tests/load runs in `make test`); reports in .loadtest/smoke
load-smoke: $(DEV)
	$(BIN)/sandbank load run smoke --out .loadtest/smoke $(LOAD_ARGS)
