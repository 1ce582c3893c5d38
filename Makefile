# cubelab: `make run` sets up and starts the whole platform; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-postgres test-trainer worker bench test-tools setup clean

setup: $(STAMP)

# The venv is rebuilt whenever the pinned requirements change.
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Debian's Chromium drives the browser tests (Playwright must never download its own);
# Debian's docker-compose validates docker-compose.yml (no Docker engine runs here).
test-tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# runplatform migrates, loads the demo data, then runs Redis, Daphne and a worker until Ctrl-C.
run: $(STAMP)
	$(BIN)/python manage.py runplatform --port $(PORT)

# One more Celery worker against the same Redis and database (an operator adding capacity):
# queues gpu,cpu where CUDA is usable, else cpu (QUEUES overrides); its own node name
# (worker-<pid>@host, WORKER_NAME overrides) so two on one host never collide.
worker: $(STAMP)
	exec $(BIN)/python -m webapp.processes worker

# The whole suite on the embedded defaults (SQLite, our own Redis), then the database-facing
# tests again on a throwaway PostgreSQL cluster, the production database: the web app, the
# lease and bridge tests (conditional updates, idempotent inserts) and a real worker killed mid-run.
PG_TESTS = tests/webapp tests/deploy tests/reliability/test_worker_loss.py
PG_FAST_TESTS = -m "not slow" tests/reliability tests/worker

test: $(STAMP) test-tools
	$(BIN)/python -m pytest -q
	scripts/with_postgres.sh sh -c '$(BIN)/python -m pytest -q $(PG_TESTS) && $(BIN)/python -m pytest -q $(PG_FAST_TESTS)'

test-postgres: $(STAMP)
	scripts/with_postgres.sh sh -c '$(BIN)/python -m pytest -q $(PG_TESTS) && $(BIN)/python -m pytest -q $(PG_FAST_TESTS)'

test-trainer: $(STAMP)
	$(BIN)/python -m pytest -q tests/trainer

bench: $(STAMP)
	$(BIN)/python -m trainer bench

clean:
	rm -rf $(VENV) var out test-artifacts
