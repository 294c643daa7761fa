"""The Tailscale API stand-in over headscale's recorded JSON, for the unit tests of the
stand-in and of the provider plugin stand-in (test_conformance.py has its own, over a real
headscale)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.tailscale_api import OAuthClient, TailscaleApiStandin
from tests.standin_apis.api_calls import API_KEY, MEMBER, OWNER
from tests.standin_apis.recorded_headscale import RecordedHeadscale


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
