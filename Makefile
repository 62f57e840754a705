# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
JOBS   ?= 2

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/gmmspeech demo --out demo-out

test: install
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile tests

lint: install
	$(VENV)/bin/ruff check gmmspeech tests bench

bench: install
	$(PY) bench/bench_mfcc.py
	$(PY) bench/bench_gmm.py
	$(PY) bench/bench_score.py
	$(PY) bench/bench_ubm_scale.py
	$(PY) bench/bench_long_file.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache build *.egg-info
