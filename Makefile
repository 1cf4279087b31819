# ciksim developer tasks. Only Python >= 3.11 and pip are needed on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs clean calibrate calibrate-allo serve screenshot

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ciksim run examples/aml-adjuvant-cik.toml --out out

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/culture.py
	$(BIN)/python benchmarks/trial.py
	$(BIN)/python benchmarks/reference_tools.py
	$(BIN)/python benchmarks/recovery.py

# Regenerate the shipped posterior of the in vivo CIK effect (under a minute on 2 cores).
calibrate: $(STAMP)
	$(BIN)/python benchmarks/calibration.py --install

# Regenerate the shipped posterior of the allo model's alloreactivity (A1-A4, A6 studies;
# 300 particles x 6 generations: about 20 min on 2 cores).
calibrate-allo: $(STAMP)
	$(BIN)/python benchmarks/calibration_allo.py --install

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info

docs: $(STAMP)
	$(BIN)/python -m ciksim.docs docs/models

serve: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[web]'
	$(BIN)/ciksim serve

# the README's picture of the web page, taken by the web test in headless Chromium
screenshot: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,webtest]'
	CIKSIM_WEB_SCREENSHOT=docs/web-page.png $(BIN)/python -m pytest tests/test_web.py -k every_page
