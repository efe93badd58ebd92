# mlexp developer commands. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q --disable-pip-version-check

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev,torch,datasets,mlflow,tensorboard,launchers,postgres,explain,label,serve]"
	touch $@

install: $(VENV)/.installed ## create .venv and install mlexp with every extra (torch: CPU build)

run: install ## install, then run the default experiment (breast_cancer, 5-fold, logistic regression)
	$(VENV)/bin/mlexp

test: install ## install, then run the whole test suite (slow tests included)
	$(VENV)/bin/pytest -q

test-fast: install ## the suite without the tests marked slow
	$(VENV)/bin/pytest -q -m "not slow"

bench: install ## run the benchmarks in bench/ and print the ratios (about 20 minutes)
	$(PY) bench/bench_startup.py
	$(PY) bench/bench_overhead.py
	$(PY) bench/bench_torch_epoch.py --epochs 3 --rounds 2 --batch-size 32 --threads 1
	$(PY) bench/bench_text.py --repeats 3
	$(PY) bench/bench_tuner.py --trials 20
	$(PY) bench/bench_responsible.py --repeats 3
	$(PY) bench/bench_compress.py
	$(PY) bench/bench_continual.py

clean: ## remove outputs, sweeps and caches (keeps .venv)
	rm -rf outputs/2* multirun .pytest_cache build dist *.egg-info

.PHONY: help install run test test-fast bench clean
