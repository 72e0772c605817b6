# Two commands set everything up on a fresh Linux machine with Python 3.11:
#   make run    the app on the shipped model and the sample CT (http://127.0.0.1:7860)
#   make test   the whole test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test cli benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.app: requirements.txt requirements-core.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt requirements-core.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.app

run: $(VENV)/.app
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python app.py

test: $(VENV)/.dev
	bash scripts/system_deps.sh
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest

cli: $(VENV)/.app
	$(BIN)/python -m hepatoscan segment samples/lits117_volume.nii.gz samples/lits117_z080_w350.png --out out --pdf

benchmark: $(VENV)/.dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache
