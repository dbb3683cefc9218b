# The two commands of the README: `make demo` and `make test`. Both build their own virtualenvs
# with pinned dependencies (constraints/*.txt) and reuse them while the pins are unchanged.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENV2 := .venv-airflow2
PIP_VERSION := 26.3
PYTEST_ARGS ?=

# The older Airflow 3 lines of the version matrix (docs/versions.md), each in its own .venv-airflow-LINE.
MATRIX_LINES := 3.0 3.1 3.2

.PHONY: help venv venv-airflow2 browser lint docs test test-airflow3 test-airflow2 test-matrix demo bench bench-smoke clean

help:
	@echo "make demo   - send, wait for delivery and export the report against the sandbox"
	@echo "make test   - lint, types, the docs and the tests on Airflow 3.3 and 2.11, then 3.0, 3.1 and 3.2"
	@echo "make docs   - build the documentation site into docs/_build/html (warnings are errors)"
	@echo "make bench  - the benchmarks (prints a table, writes benchmarks/results/latest.json)"

$(VENV)/.installed: pyproject.toml constraints/airflow-3.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(VENV)/bin/python -m pip install -q -c constraints/airflow-3.txt -e '.[amazon,parquet,redis,common-messaging,test,docs]' apache-airflow-providers-celery apache-airflow-providers-openlineage 'celery<5.7'
	touch $@

$(VENV2)/.installed: pyproject.toml constraints/airflow-2.txt
	test -x $(VENV2)/bin/python || $(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(VENV2)/bin/python -m pip install -q -c constraints/airflow-2.txt -e '.[amazon,redis,test]'
	touch $@

# Headless Chromium (Debian's package) for the test that looks at Airflow's Required Actions page.
browser:
	@command -v chromium >/dev/null || apt-get install -y -qq --no-install-recommends chromium >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)
	@command -v chromium >/dev/null

venv: $(VENV)/.installed
venv-airflow2: $(VENV2)/.installed

lint: venv
	$(VENV)/bin/ruff check airflow_provider_easify tests example_dags benchmarks scripts docs
	$(VENV)/bin/mypy airflow_provider_easify

docs: venv
	rm -rf docs/_build
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test-airflow3: venv browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-airflow2: venv-airflow2
	$(VENV2)/bin/python -m pytest --ignore=tests/deployment --ignore=tests/airflow3 $(PYTEST_ARGS)

test-matrix: browser
	set -e; for line in $(MATRIX_LINES); do $(PYTHON) scripts/airflow_matrix.py $$line $(PYTEST_ARGS); done

test: lint docs test-airflow3 test-airflow2 test-matrix

demo: venv
	$(VENV)/bin/python scripts/demo.py

bench: venv
	$(VENV)/bin/python benchmarks/run_all.py

bench-smoke: venv
	$(VENV)/bin/python benchmarks/run_all.py --smoke

clean:
	rm -rf $(VENV) $(VENV2) .venv-airflow-* build *.egg-info
