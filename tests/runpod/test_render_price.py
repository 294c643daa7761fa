"""`make render STACK=prod`: offline without a RunPod key; with one, one catalog read through
the stack's API, and each machine's price per hour."""

from __future__ import annotations

import pytest

from coral_infra import render
from coral_infra.runpod import api
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import API_KEY, CATALOG_GPUS

# The render uses the API the stack file names: prod names none, so REST v2.
pytestmark = pytest.mark.parametrize("wire", ["v2"])

PRICE_LINE = (
    "coral-machine: 1 x NVIDIA A100 80GB PCIe in the SECURE cloud: $1.64/h (RunPod list price)"
)


def test_render_without_a_key_calls_nothing_and_says_how_to_see_prices(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(api.API_KEY_ENV, raising=False)
    text = render.render("prod")
    assert "== price per hour (RunPod API: v2) ==" in text
    assert f"set {api.API_KEY_ENV} to check GPU types" in text
    assert PRICE_LINE not in text
    assert standin.calls == []


def test_render_with_a_key_shows_the_price_per_hour(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.gpu_types.update({offer.id: offer for offer in CATALOG_GPUS})
    standin.free_gpus.update({offer.id: 16 for offer in CATALOG_GPUS})
    monkeypatch.setenv(api.API_KEY_ENV, API_KEY)
    text = render.render("prod")
    assert PRICE_LINE in text.split("== price per hour (RunPod API: v2) ==")[1]
    assert sorted(c.op for c in standin.calls) == ["listDataCenters", "listGpuTypes"]
    assert API_KEY not in text


def test_render_with_a_key_fails_on_a_gpu_type_runpod_does_not_offer(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(api.API_KEY_ENV, API_KEY)
    assert render.main(["prod"]) == 2  # the stand-in offers no A100 80GB PCIe by default
    error = capsys.readouterr().err
    assert "coral:machines[0].gpuType: got 'NVIDIA A100 80GB PCIe'" in error
