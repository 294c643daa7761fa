# Two commands work on a fresh machine (see README):
#   make demo               the main job: the whole system on loopback, no account needed
#   make test               the whole test suite; installs what it needs itself
# and `make render STACK=dev` shows a stack's plan offline.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: venv render test lint typecheck unit demo demo-down

# The venv is rebuilt only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# PROJECT=<dir> renders a stack of another checkout of this project (its stacks/ and policy/).
render: venv
	$(PY) -m coral_infra.render $(STACK) $(if $(PROJECT),--project-dir $(PROJECT))

# The local sandbox: headscale + the Tailscale and RunPod API stand-ins + `pulumi up` on the
# `local` stack with the Go-built engine (tools/build-*.sh, cached in .cache/bin). Runs in the
# foreground until Ctrl-C or `make demo-down`, which destroy the stack and stop everything.
demo: venv
	$(PY) -m standins.sandbox

demo-down: venv
	$(PY) -m standins.sandbox --down

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest

test: lint typecheck unit
