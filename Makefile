# Two commands work on a fresh machine (see README):
#   make demo               the main job: the whole system on loopback, no account needed
#   make test               the whole test suite; installs what it needs itself
# and `make render STACK=dev` shows a stack's plan offline.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: venv render test lint typecheck unit demo demo-down tools bench

# The venv is rebuilt only when pyproject.toml changes (tools/make-venv.sh, with progress).
$(VENV)/.installed: pyproject.toml
	@PYTHON=$(PYTHON) tools/make-venv.sh

venv: $(VENV)/.installed

# Everything `make test` (or, with TOOLS_FOR=demo, `make demo`) needs, before either starts:
# the prerequisites checked in a second or two (tools/check-prereqs.sh), then the venv and the
# Go-built tools side by side with progress (tools/build.sh); near-instant once built.
TOOLS_FOR ?= test
tools:
	@PYTHON=$(PYTHON) tools/check-prereqs.sh $(TOOLS_FOR)
	@PYTHON=$(PYTHON) tools/build.sh $(TOOLS_FOR)

# PROJECT=<dir> renders a stack of another checkout of this project (its stacks/ and policy/).
render: venv
	$(PY) -m coral_infra.render $(STACK) $(if $(PROJECT),--project-dir $(PROJECT))

# The local sandbox: headscale + the Tailscale and RunPod API stand-ins + `pulumi up` on the
# `local` stack with the Go-built engine (tools/build-*.sh, cached in .cache/bin). Runs in the
# foreground until Ctrl-C or `make demo-down`, which destroy the stack and stop everything.
demo: TOOLS_FOR = demo
demo: tools
	@$(PY) -m standins.demo

demo-down: venv
	@$(PY) -m standins.demo --down

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

unit: tools venv
	$(VENV)/bin/pytest

test: tools lint typecheck unit

# Benchmarks (not part of `make test`): each figure beside its baseline as a ratio, from one
# run (bench/, README: Performance). Needs what `make test` needs; takes 10 to 20 minutes.
bench: tools
	$(PY) -m bench
