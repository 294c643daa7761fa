"""The sandbox for the end-to-end tests: headscale, the Tailscale API and RunPod stand-ins and
the Go-built Pulumi CLI, one per test module (a `pulumi up` with a pod joining the tailnet costs
seconds; the tests of a module are steps of one stack's life). See standins/sandbox.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.binaries import BinariesUnavailable
from standins.pod_runtime import PodRuntimeError
from standins.sandbox import Sandbox, ensure_tools, start_sandbox
from standins.testbed import Testbed


@pytest.fixture(scope="session")
def tools_dir() -> Path:
    """tailscale/headscale and the Pulumi CLI; the first run builds them (minutes)."""
    try:
        return ensure_tools()
    except BinariesUnavailable as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def sandbox_on(tools_dir: Path, stack: str) -> Iterator[Sandbox]:
    """A sandbox whose project is on `stack` (skips where pods cannot run), closed after;
    every v2 exchange of its `pulumi` runs must have kept to RunPod's OpenAPI document."""
    testbed = Testbed.create()
    try:
        box = start_sandbox(testbed, tools_dir, stack=stack)
    except PodRuntimeError as exc:
        testbed.close()
        pytest.skip(str(exc))
    try:
        yield box
        violations = box.runpod.openapi_violations()
    finally:
        box.close()
    assert violations == []


@pytest.fixture(scope="module")
def sandbox(tools_dir: Path) -> Iterator[Sandbox]:
    with sandbox_on(tools_dir, "e2e") as box:
        yield box


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """On failure, attach the pulumi commands run so far and the pods' consoles."""
    report = yield
    box = item.funcargs.get("sandbox") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(box, Sandbox):
        consoles = sorted((box.testbed.root / "runpod" / "pods").glob("*/console.log"))
        text = "\n".join(box.history[-4:])
        for console in consoles:
            text += f"\n--- {console}\n{console.read_text(errors='replace')[-3000:]}"
        report.sections.append(("sandbox", text + "\n" + box.testbed.logs()[-6000:]))
    return report
