"""Fixtures: a live RunPod stand-in on loopback and an adapter pointed at it, with tiny waits.

Every test that takes `standin` runs once per wire format (REST v2, GraphQL): the guarantees
hold on both. The stand-in checks every v2 request and response against RunPod's OpenAPI
document; a test that made it find a violation fails at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from coral_infra.runpod import api, session
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, FAST


def warm_up(server: RunPodStandin) -> None:
    """The stand-in's first v2 request builds its OpenAPI validator (most of a second): make
    it before the test, whose calls are counted and timed."""
    httpx2.get(f"{server.url}/v2/pods", headers={"Authorization": f"Bearer {API_KEY}"})
    server.reset_calls()


def serve(
    server: RunPodStandin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wire: str
) -> Iterator[RunPodStandin]:
    """Run `server` with the adapter pointed at it over `wire`; fail on OpenAPI violations."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the SDK reads ~/.runpod/config.toml on import
    monkeypatch.delenv(api.API_KEY_ENV, raising=False)
    monkeypatch.setattr(session, "timing", FAST)
    monkeypatch.setattr(api, "_catalogs", {})
    with server:
        monkeypatch.setenv(api.BASE_URL_ENV, server.url)
        api.configure(API_KEY, wire)
        warm_up(server)
        yield server
        violations = server.openapi_violations()
    api.configure(None)
    assert violations == [], "the adapter or the stand-in broke RunPod's OpenAPI document"


@pytest.fixture(params=sorted(api.WIRE_FORMATS))
def wire(request: pytest.FixtureRequest) -> str:
    """The RunPod API the adapter speaks in this test: "graphql" or "v2"."""
    return str(request.param)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wire: str) -> Iterator[RunPodStandin]:
    yield from serve(RunPodStandin(API_KEY), monkeypatch, tmp_path, wire)
