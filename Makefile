# The two commands of a fresh machine: `make run` (the whole system) and `make test` (the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: run test test-quick install kafka kafka-stop postgres lint format clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP) ## Create the virtualenv, install the project with its pinned dependencies, vendor browser assets
	$(BIN)/python deploy/local/vendor_assets.py

kafka: install ## Start the local Kafka (fetched from Maven Central once)
	deploy/local/kafka.sh start

kafka-stop:
	deploy/local/kafka.sh stop

postgres: ## Install (Debian packages) and start PostgreSQL with the project's databases
	deploy/local/postgres.sh

run: install ## Kafka, SQLite databases (or *_DATABASE_URL) and the three services; Ctrl-C stops all
	$(BIN)/python deploy/local/run.py

test: install postgres kafka ## The whole suite against real PostgreSQL and Kafka
	$(BIN)/pytest $(PYTEST_ARGS)

test-quick: install postgres kafka ## Skips the slow fault tests
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

bench: install postgres kafka ## Performance figures beside same-run references (bench/README.md); QUICK=1: < 3 min
	$(BIN)/python -m bench $(if $(filter-out 0,$(QUICK)),--quick)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services ops bench tests

format: install
	$(BIN)/ruff check --fix .

clean:
	-deploy/local/kafka.sh stop
	rm -rf .data
