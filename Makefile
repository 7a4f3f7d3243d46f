# The two quick-start commands: `make demo` (the main job) and `make test`. Each bootstraps .venv on
# first use (torch CPU pinned first, the package with extras, fairseq from a cached wheel, WordNet).
SHELL := /bin/bash
PY := .venv/bin/python
SHARED_DATA := $(abspath ../shared/data)
export ST_CONTRAST_DATA ?= $(if $(wildcard $(SHARED_DATA)/README.md),$(SHARED_DATA),)
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export ST_CONTRAST_NO_SKIPS ?= 1
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint demo bench clean-venv

setup:
	@bash scripts/bootstrap.sh

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Everything, slow tests included, in two worker processes (one torch thread each).
test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

# The main job: unsupervised SimCSE from the pretrained MiniLM on real Wikipedia sentences, then STS-B.
# (--overwrite: `make demo` again replaces the previous demo run in outputs/demo.)
demo: setup
	OMP_NUM_THREADS=2 $(PY) examples/simcse_unsup_demo.py --output-dir outputs/demo --overwrite

# The CPU loss benchmark (every loss, batch 64 and 512); its result goes to outputs/bench/, not over the recorded
# benchmarks/results/bench_losses_cpu-tiny.json. BENCH_ARGS adds options, e.g. BENCH_ARGS="--losses simcse,mnrl".
BENCH_ARGS ?=
bench: setup
	$(PY) -m benchmarks.bench_losses --preset cpu-tiny --results-dir outputs/bench $(BENCH_ARGS)

clean-venv:
	rm -rf .venv
