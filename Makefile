# One-command set-up: every target creates (or reuses) the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned, so nothing can pull a CUDA build in its place
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The most complete pipeline the project has today: the model family and its checkpoints.
# (The end-to-end `mobiledr demo` replaces this once it exists.)
demo: $(STAMP)
	$(BIN)/mobiledr summary --preset thesis-dr
	$(BIN)/mobiledr summary --preset thesis-dr-small
	$(BIN)/mobiledr summary --preset oct-kermany
	$(BIN)/mobiledr weights --dir weights

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/model_costs.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
