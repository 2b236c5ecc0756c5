# The quickstart commands: `make demo`, `make test` and its inner-loop tier `make test-fast`. All create .venv
# on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel by default; on a GPU machine set TORCH_SPEC to the CUDA build you want (e.g. torch==2.13.0).
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

# System tools some tests use, installed from Debian when missing (as root, or through sudo): the evaluation
# report's test opens the report in headless Chromium (chromium, chromium-driver); the alignment test sings
# lyrics with espeak-ng.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# demucs and openunmix require torchaudio, which has no wheel for the CPU torch above; the separation tests
# run demucs's own code without it (tests/data_prep_build/demucs_model.py says how), so they are installed
# here without their dependencies, beside the few of those that demucs's import needs.
DEMUCS_FOR_TESTS := demucs==4.0.1 openunmix==1.3.0 julius==0.2.8 einops dora-search treetable retrying submitit \
	cloudpickle

.PHONY: demo test test-fast lint clean-venv test-tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps $(DEMUCS_FOR_TESTS)
	touch $@

demo: $(BIN)/.installed
	$(BIN)/yue-train recipe=demo

# Tests run in one worker process per core (pytest-xdist; pyproject's addopts add --dist loadgroup, which keeps
# tests marked xdist_group on one worker). A folder that several tests read (a trained run, shards) is built
# once for all workers by built_once in tests/conftest.py. CI runs `make test`; it prints the 25 slowest tests.
test: $(BIN)/.installed test-tools
	$(BIN)/python -m pytest -q -n auto --durations=25

# Every test not marked slow: the inner loop, a few minutes on 2 cores.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto -m "not slow"

test-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v espeak-ng >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver espeak-ng; }

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-venv:
	rm -rf $(VENV)
