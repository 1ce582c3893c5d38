# cubelab: `make run` sets up and starts the whole platform; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-trainer worker bench browser setup clean

setup: $(STAMP)

# The venv is rebuilt whenever the pinned requirements change.
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Debian's Chromium drives the browser tests (Playwright must never download its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# runplatform migrates, loads the demo data, then runs Redis, Daphne and a worker until Ctrl-C.
run: $(STAMP)
	$(BIN)/python manage.py runplatform --port $(PORT)

# One more Celery worker against the same Redis and database (an operator adding capacity).
worker: $(STAMP)
	$(BIN)/celery -A worker worker -Q $${QUEUES:-cpu,gpu} --pool solo --loglevel INFO

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-trainer: $(STAMP)
	$(BIN)/python -m pytest -q tests/trainer

bench: $(STAMP)
	$(BIN)/python -m trainer bench

clean:
	rm -rf $(VENV) var out test-artifacts
