"""Fixtures: a live RunPod stand-in on loopback and an adapter pointed at it, with tiny waits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coral_infra.runpod import api
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, FAST


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RunPodStandin]:
    monkeypatch.setenv("HOME", str(tmp_path))  # the SDK reads ~/.runpod/config.toml on import
    monkeypatch.delenv(api.API_KEY_ENV, raising=False)
    monkeypatch.setattr(api, "timing", FAST)
    with RunPodStandin(API_KEY) as server:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
        api.configure(API_KEY)
        yield server
    api.configure(None)
