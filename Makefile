# One-command set-up: every target creates (or reuses) the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install native-deps browser-deps native demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned, so nothing can pull a CUDA build in its place
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The native runner (android_harness/native/) reads .bpte files with flatc-generated code: flatbuffers
# from the system's packages (Debian/Ubuntu here; on macOS: brew install flatbuffers).
FLATBUFFERS_PACKAGES := flatbuffers-compiler libflatbuffers-dev
native-deps:
	@if command -v flatc >/dev/null && [ -f /usr/include/flatbuffers/flatbuffers.h ]; then exit 0; fi; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get install -y -q $(FLATBUFFERS_PACKAGES) >/dev/null || \
	  ($$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $(FLATBUFFERS_PACKAGES) >/dev/null)

# Headless Chromium renders the demo's HTML report in tests (Debian's chromium; on Ubuntu use Google Chrome).
browser-deps:
	@if command -v chromium >/dev/null || command -v google-chrome >/dev/null; then exit 0; fi; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get install -y -q chromium >/dev/null || \
	  ($$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null)

native: $(STAMP) native-deps
	$(BIN)/mobiledr bench --build-native

# The main job: synthetic data -> training -> evaluation -> explanations -> android and ios bundles ->
# parity -> desktop benchmark (native runner included) -> DEMO/report.html. FAST=1 for the 3-minute run.
DEMO ?= out/demo
demo: $(STAMP) native-deps
	$(BIN)/mobiledr demo --out $(DEMO) $(if $(FAST),--fast)

test: $(STAMP) native-deps browser-deps
	$(BIN)/python -m pytest

bench: $(STAMP) native
	$(BIN)/python benchmarks/model_costs.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/synth_training.py
	$(BIN)/python benchmarks/prepare_throughput.py
	$(BIN)/python benchmarks/duplicates.py
	$(BIN)/python benchmarks/export_times.py
	$(BIN)/python benchmarks/runtime_latency.py
	$(BIN)/python benchmarks/demo_timings.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
