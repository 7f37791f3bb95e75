# Lockgate: `make run` starts the gateway, `make test` runs every test, `make bench` the benchmark.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
MOCK_PORT ?= 9090

.PHONY: install run test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-installs whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# With no provider key in the environment, run against the bundled mock provider and demo config.
run: install
	@if [ -z "$$OPENAI_API_KEY$$ANTHROPIC_API_KEY" ] && [ -z "$(CONFIG)" ]; then \
	  echo "No provider key set: starting the mock provider on :$(MOCK_PORT) and the demo config."; \
	  $(BIN)/lockgate mock-provider --port $(MOCK_PORT) & mock=$$!; \
	  trap "kill $$mock 2>/dev/null" EXIT INT TERM; \
	  for i in $$(seq 50); do curl -s -o /dev/null http://127.0.0.1:$(MOCK_PORT)/v1/models -H 'authorization: Bearer x' && break; sleep 0.1; done; \
	  echo; echo "Try:  curl http://$(HOST):$(PORT)/v1/chat/completions -H 'content-type: application/json' \\"; \
	  echo "        -d '{\"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"; echo; \
	  LOCKGATE_MOCK_URL=http://127.0.0.1:$(MOCK_PORT) $(BIN)/lockgate serve --host $(HOST) --port $(PORT) --config examples/demo.yaml --demo; \
	else \
	  echo "Try:  curl http://$(HOST):$(PORT)/v1/chat/completions -H \"authorization: Bearer \$$LOCKGATE_MASTER_KEY\" -H 'content-type: application/json' -d '{\"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"; \
	  $(BIN)/lockgate serve --host $(HOST) --port $(PORT) $(if $(CONFIG),--config $(CONFIG),$(if $(wildcard lockgate.yaml),--config lockgate.yaml,)); \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	bash bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .lockgate .pytest_cache .ruff_cache .hypothesis
