# One-command set-up: every target creates (or reuses) the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install native-deps arm64-deps jvm-deps browser-deps native native-arm64 demo test bench clean

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

# The runner cross-built for linux-aarch64 and run under user-mode qemu (tests do both): Debian's cross
# compiler (with its aarch64 libc/libstdc++ under /usr/aarch64-linux-gnu) and qemu-user-static.
ARM64_PACKAGES := g++-aarch64-linux-gnu qemu-user-static
arm64-deps: native-deps
	@if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64-static >/dev/null; then exit 0; fi; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get install -y -q $(ARM64_PACKAGES) >/dev/null || \
	  ($$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $(ARM64_PACKAGES) >/dev/null)

# The app's plain Kotlin is compiled and run on the JVM in tests: a JDK and Android's org.json (Debian's
# openjdk-17-jdk-headless, libandroid-json-java) and the Kotlin compiler from npm, cached under
# build/kotlin/ (KOTLINC=build/kotlin/node_modules/kotlin-compiler/bin/kotlinc).
KOTLIN_VERSION := 2.4.20
KOTLINC := build/kotlin/node_modules/kotlin-compiler/bin/kotlinc
JVM_PACKAGES := openjdk-17-jdk-headless libandroid-json-java npm
jvm-deps:
	@if ! command -v javac >/dev/null || ! command -v npm >/dev/null || [ ! -f /usr/share/java/com.android.json.jar ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q $(JVM_PACKAGES) >/dev/null || \
	    ($$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $(JVM_PACKAGES) >/dev/null); \
	fi
	@[ -x $(KOTLINC) ] || (mkdir -p build/kotlin && cd build/kotlin && npm install --silent --no-audit --no-fund kotlin-compiler@$(KOTLIN_VERSION) >/dev/null)

# Headless Chromium renders the demo's HTML report in tests (Debian's chromium; on Ubuntu use Google Chrome).
browser-deps:
	@if command -v chromium >/dev/null || command -v google-chrome >/dev/null; then exit 0; fi; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get install -y -q chromium >/dev/null || \
	  ($$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null)

native: $(STAMP) native-deps
	$(BIN)/mobiledr bench --build-native

# build/native/linux-aarch64/mobiledr_runner (fetches the aarch64 executorch wheel into build/wheels/ once)
native-arm64: $(STAMP) arm64-deps
	$(BIN)/mobiledr bench --build-native --abi arm64

# The main job: synthetic data -> training -> evaluation -> explanations -> android and ios bundles ->
# parity -> desktop benchmark (native runner included) -> DEMO/report.html. FAST=1 for the 3-minute run.
DEMO ?= out/demo
demo: $(STAMP) native-deps
	$(BIN)/mobiledr demo --out $(DEMO) $(if $(FAST),--fast)

# native-arm64 fetches the aarch64 wheel (PyPI) before the tests, so they need no network
test: $(STAMP) native-deps native-arm64 jvm-deps browser-deps
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
