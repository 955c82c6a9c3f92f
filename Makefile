# Two commands do everything on a fresh machine:
#   make report   the fake master drives the reference worker through the lifecycle scenario -> reports/latest/
#   make test     the whole test suite, plus type checks and the import-layering contracts
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: report test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[locust,dev]"
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(BIN)/locust-conformance run --worker reference

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest -p no:cacheprovider

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .hypothesis
