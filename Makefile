# Two commands (see README): `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CSRC := $(shell find csrc -type f) setup.py

.PHONY: demo test test-python test-csrc bench install clean

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

demo: install
	$(PY) -m himnet_fast.train

# C++ algorithm tests under AddressSanitizer + UndefinedBehaviorSanitizer (no torch).
test-csrc:
	cmake -S . -B build/cmake-asan -DHIMNET_FAST_SANITIZE=ON > /dev/null
	cmake --build build/cmake-asan -j 2 > /dev/null
	ctest --test-dir build/cmake-asan --output-on-failure

# pytest exits 5 when it collects no test: treat that as a failure to notice, not success.
test-python: install
	$(PY) -m pytest tests -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test: install test-csrc test-python

bench: install
	$(PY) -m pytest bench --benchmark-only

clean:
	rm -rf build himnet_fast/_C*.so *.egg-info
