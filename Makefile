# Two commands (see README): `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CSRC := $(shell find csrc -type f) setup.py

.PHONY: demo test lint test-python test-csrc test-gpu-stack bench install clean

$(VENV)/.deps: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Rebuilds himnet_fast._C whenever a C++/CUDA source or setup.py changes (-v shows the nvcc lines).
$(VENV)/.built: $(VENV)/.deps $(CSRC) pyproject.toml
	MAX_JOBS=$${MAX_JOBS:-2} $(PY) -m pip install -v --no-build-isolation --no-deps -e . 2>&1 \
	  | grep -E "nvcc|g\+\+|c\+\+|Successfully|error|Error" | cut -c1-240
	$(PY) -c "import torch, himnet_fast, himnet_fast._C; print('himnet_fast._C loaded')"
	touch $@

install: $(VENV)/.built

# --overwrite: the demo replaces its previous outputs in runs/synthetic (train refuses that otherwise).
demo: install
	$(PY) -m himnet_fast.train --overwrite

# C++ algorithm tests under AddressSanitizer + UndefinedBehaviorSanitizer (no torch).
test-csrc:
	cmake -S . -B build/cmake-asan -DHIMNET_FAST_SANITIZE=ON > /dev/null
	cmake --build build/cmake-asan -j 2 > /dev/null
	ctest --test-dir build/cmake-asan --output-on-failure

# pytest exits 5 when it collects no test: treat that as a failure to notice, not success.
test-python: install
	$(PY) -m pytest tests -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

# ruff with the rule set stated in pyproject.toml ([tool.ruff.lint]).
lint: $(VENV)/.deps  # ruff only: no extension build needed
	$(VENV)/bin/ruff check .

test: install lint test-csrc test-python

# The GPU machine's stack here (torch 2.11.0 + Triton 3.6.0 instead of the pinned 2.14.1 / 3.8.0;
# bench/gpu_check.sh runs there): a second venv, a copy of the working tree (its extension build
# must not replace .venv's), the extension built against that torch (its CUDA sources for sm_90
# where nvcc is found), then the op tests: Triton kernels through the interpreter and the
# ahead-of-time compile of every kernel for sm_90. Not part of `make test`.
GPU_STACK_VENV := .venv-gpu-stack
GPU_STACK_SRC := build/gpu-stack/src
GPU_STACK_TESTS := tests/test_triton_topk.py tests/test_triton_losses.py tests/test_loss_module.py \
                   tests/test_postprocess_ops.py

$(GPU_STACK_VENV)/.deps:
	$(PYTHON) -m venv $(GPU_STACK_VENV)
	$(GPU_STACK_VENV)/bin/python -m pip install --upgrade --quiet pip
	$(GPU_STACK_VENV)/bin/python -m pip install --quiet torch==2.11.0 triton==3.6.0 numpy numba tqdm matplotlib \
	  pytest pytest-benchmark hypothesis pandas setuptools wheel ninja
	touch $@

test-gpu-stack: $(GPU_STACK_VENV)/.deps
	rm -rf $(GPU_STACK_SRC) && mkdir -p $(GPU_STACK_SRC)  # no stale copies of deleted sources
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C $(GPU_STACK_SRC)
	cd $(GPU_STACK_SRC) && MAX_JOBS=$${MAX_JOBS:-2} $(CURDIR)/$(GPU_STACK_VENV)/bin/python -m pip install -v \
	  --no-build-isolation --no-deps -e . 2>&1 | grep -E "nvcc|Successfully|error|Error" | cut -c1-200
	cd $(GPU_STACK_SRC) && HIMNET_FAST_SHARED_DATA=$(CURDIR)/../shared/data \
	  $(CURDIR)/$(GPU_STACK_VENV)/bin/python -m pytest $(GPU_STACK_TESTS) -q -p no:cacheprovider

bench: install
	$(PY) -m pytest bench --benchmark-only

clean:
	rm -rf build himnet_fast/_C*.so *.egg-info
