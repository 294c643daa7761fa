"""Fixtures of the stand-ins' own tests: the Tailscale API stand-in over headscale's recorded
JSON (for the stand-in and the provider plugin stand-in; test_conformance.py has its own, over
a real headscale), and the RunPod stand-in on loopback with a bare HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.runpod_api import RunPodStandin
from standins.tailscale_api import OAuthClient, TailscaleApiStandin
from tests.standin_apis.api_calls import API_KEY, MEMBER, OWNER
from tests.standin_apis.recorded_headscale import RecordedHeadscale
from tests.standin_apis.runpod_client import RUNPOD_API_KEY, RunPodClient


@pytest.fixture
def headscale() -> RecordedHeadscale:
    return RecordedHeadscale()


@pytest.fixture
def api(headscale: RecordedHeadscale) -> Iterator[TailscaleApiStandin]:
    standin = TailscaleApiStandin(
        api_key=API_KEY,
        headscale=headscale,
        roles={OWNER: "owner", MEMBER: "member"},
        oauth_clients={
            "devices-reader": OAuthClient("tskey-client-r", frozenset({"devices:core:read"})),
            "everything": OAuthClient("tskey-client-all", frozenset({"all"})),
        },
    ).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def runpod() -> Iterator[RunPodStandin]:
    with RunPodStandin(RUNPOD_API_KEY) as standin:
        yield standin


@pytest.fixture
def client(runpod: RunPodStandin) -> RunPodClient:
    return RunPodClient(runpod.url)
