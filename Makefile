# mestudio — one-command set-up. `make demo` and `make test` create .venv on first use.
# CUDA users: make test TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Headless machines (no X11/Wayland display) render offscreen; a desktop gets a real window.
ifeq ($(strip $(DISPLAY)$(WAYLAND_DISPLAY)),)
export QT_QPA_PLATFORM ?= offscreen
endif

.PHONY: install demo test bench lint package clean FORCE
FORCE:

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

TORCH_STAMP := $(VENV)/.torch-spec

# The torch spec in use; rewritten (forcing a re-install) only when TORCH_SPEC changes.
$(TORCH_STAMP): FORCE | $(BIN)/python
	@echo '$(TORCH_SPEC)' | cmp -s - $@ || echo '$(TORCH_SPEC)' > $@

# Re-install only when the dependency list or the torch spec changes.
$(STAMP): pyproject.toml $(TORCH_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev,cluster]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mestudio demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/mestudio bench all

lint: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/mypy

package: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[package]"
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/mestudio.spec

clean:
	rm -rf $(VENV) build dist .pytest_cache
