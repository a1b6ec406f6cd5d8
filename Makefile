# One-command set-up: every target creates (or reuses) the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install native-deps native demo test bench clean

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

native: $(STAMP) native-deps
	$(BIN)/mobiledr bench --build-native

# The most complete pipeline the project has today: synthetic data -> cache -> splits -> training ->
# clinical evaluation -> explanations -> export -> parity. (The end-to-end `mobiledr demo` replaces this once it exists.)
DEMO ?= out/demo
demo: $(STAMP)
	$(BIN)/mobiledr data synth --out $(DEMO)/data --n 1000 --size 256 --seed 0
	$(BIN)/mobiledr data prepare $(DEMO)/data --dataset aptos --size 128 --out $(DEMO)/cache
	$(BIN)/mobiledr data split $(DEMO)/cache --scheme any-dr --out $(DEMO)/splits.csv --merge-duplicates
	$(BIN)/mobiledr data inspect $(DEMO)/data --dataset aptos --splits $(DEMO)/splits.csv --sheet $(DEMO)/contact_sheet.png
	$(BIN)/mobiledr data preview $$(ls $(DEMO)/data/train_images/*.png | head -n 3) --size 128 --out $(DEMO)/preview
	rm -rf $(DEMO)/run
	$(BIN)/mobiledr train --preset demo --data $(DEMO)/cache --splits $(DEMO)/splits.csv --out $(DEMO)/run
	$(BIN)/mobiledr evaluate $(DEMO)/run/best.pt --split test --out $(DEMO)/run/eval-test
	$(BIN)/mobiledr explain $(DEMO)/run/best.pt $$(ls $(DEMO)/data/train_images/*.png | head -n 4) --out $(DEMO)/run/explain
	$(BIN)/mobiledr export $(DEMO)/run/best.pt --target all --out $(DEMO)/bundle
	$(BIN)/mobiledr bundle verify $(DEMO)/bundle
	# parity gates the bundle and exits 1 on a failure: the 2-minute demo model's int8 artifacts fail it
	# (benchmarks/results/parity_demo.md), so the demo reports that and goes on
	-$(BIN)/mobiledr parity $(DEMO)/bundle --synthetic 200
	$(BIN)/mobiledr summary --preset thesis-dr
	@echo "demo outputs in $(DEMO): contact_sheet.png, preview/, run/ (curves.png, best.pt, eval-test/report.md, explain/), bundle/ (parity/report.md)"

test: $(STAMP) native-deps
	$(BIN)/python -m pytest

bench: $(STAMP) native
	$(BIN)/python benchmarks/model_costs.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/synth_training.py
	$(BIN)/python benchmarks/prepare_throughput.py
	$(BIN)/python benchmarks/duplicates.py
	$(BIN)/python benchmarks/export_times.py
	$(BIN)/python benchmarks/runtime_latency.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
