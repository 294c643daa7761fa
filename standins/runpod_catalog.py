"""The RunPod catalog as REST v2 serves it (`listGpuTypes`, `listDataCenters`): what the
account offers — GPU types with a price per GPU-hour per cloud, the data centers — and, when
asked, stock levels derived from the account's free GPUs (`free_gpus`, `sold_out`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from standins.runpod_records import AccountError, GpuTypeOffer

if TYPE_CHECKING:
    from standins.runpod_account import RunPodAccount

# Data centers the stand-in knows by name; others get their id as name and a region from it.
_DATA_CENTER_NAMES = {
    "EU-RO-1": "EU Romania 1",
    "EU-CZ-1": "EU Czech Republic 1",
    "EU-SE-1": "EU Sweden 1",
    "EU-NL-1": "EU Netherlands 1",
    "US-TX-3": "US Texas 3",
    "US-KS-2": "US Kansas 2",
    "US-CA-2": "US California 2",
    "US-GA-1": "US Georgia 1",
}
_REGIONS = {"EU": "EUROPE", "US": "NORTH_AMERICA", "CA": "NORTH_AMERICA", "AP": "ASIA"}


def gpu_types(account: RunPodAccount, query: dict[str, Any], given: list[str]) -> dict[str, Any]:
    """`listGpuTypes`: ids, per-cloud prices and, with include=AVAILABILITY, stock; `given`
    names the query parameters the client sent (the validated query has defaults filled in)."""
    availability = "AVAILABILITY" in query.get("include", [])
    scoped = {"count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion"}
    if not availability and ("product" in query or scoped & set(given)):
        raise AccountError(
            "invalid",
            "product, count, cloud, countryCodes and CUDA filters need include=AVAILABILITY",
        )
    if availability and "product" not in query:
        raise AccountError("invalid", "include=AVAILABILITY needs product (e.g. POD)")
    if query.get("cudaVersions") and "minCudaVersion" in query:
        raise AccountError("invalid", "cudaVersions and minCudaVersion are mutually exclusive")
    gpus = []
    for offer in account.gpu_types.values():
        entry = _gpu_entry(account, offer)
        if availability:
            levels = _availability(account, offer, query)
            if levels is None:
                continue  # no data center in the asked countries
            entry |= levels
        gpus.append(entry)
    return {"gpus": gpus}


def _gpu_entry(account: RunPodAccount, offer: GpuTypeOffer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "name": offer.display_name,
        "pool": None,
        "manufacturer": "NVIDIA",
        "memory": offer.memory_gb,
        "secure": True,
        "community": True,
        "price": {
            "secure": account.price(offer, "SECURE"),
            "community": account.price(offer, "COMMUNITY"),
        },
        "maxCount": {"secure": offer.max_gpu_count, "community": offer.max_gpu_count},
    }


def _availability(
    account: RunPodAccount, offer: GpuTypeOffer, query: dict[str, Any]
) -> dict[str, Any] | None:
    count = query.get("count", 1)
    countries = query.get("countryCodes")
    data_centers = [
        dc for dc in account.offered_in(offer) if not countries or _country(dc) in countries
    ]
    if countries and not data_centers:
        return None
    cuda_ok = account.cuda_matches(offer, query.get("cudaVersions"), query.get("minCudaVersion"))
    levels = {
        dc: _level(account.free_in(offer, dc), count) if cuda_ok else "NONE" for dc in data_centers
    }
    order = ["NONE", "LOW", "MEDIUM", "HIGH"]
    overall = max(levels.values(), key=order.index, default="NONE")
    entry: dict[str, Any] = {
        "availability": overall,
        "cudaVersions": [{"version": offer.cuda_version, "available": overall != "NONE"}],
    }
    if overall != "NONE":
        entry["dataCenters"] = [
            {"id": dc, "name": _DATA_CENTER_NAMES.get(dc, dc), "availability": level}
            for dc, level in levels.items()
        ]
    return entry


def data_centers(account: RunPodAccount, query: dict[str, Any]) -> dict[str, Any]:
    """`listDataCenters`, with its filters and include=GPU_AVAILABILITY."""
    data_centers = []
    for dc in account.data_centers:
        entry: dict[str, Any] = {
            "id": dc,
            "name": _DATA_CENTER_NAMES.get(dc, dc),
            "region": _REGIONS.get(dc.split("-")[0], "UNKNOWN"),
            "globalNetwork": False,
            "networkVolumeTypes": ["STANDARD", "HIGH_PERFORMANCE"],
            "compliance": [],
        }
        if query.get("regions") and entry["region"] not in query["regions"]:
            continue
        if not set(query.get("networkVolumeTypes", [])) <= set(entry["networkVolumeTypes"]):
            continue
        if query.get("compliance") or query.get("globalNetwork") is True:
            continue
        if "GPU_AVAILABILITY" in query.get("include", []):
            offers = [o for o in account.gpu_types.values() if dc in account.offered_in(o)]
            if offers:
                entry["gpuAvailability"] = [
                    {
                        "id": o.id,
                        "name": o.display_name,
                        "availability": _level(account.free_in(o, dc), 1),
                    }
                    for o in offers
                ]
        data_centers.append(entry)
    return {"dataCenters": data_centers}


def _level(free: int, count: int) -> str:
    if free < count:
        return "NONE"
    return "LOW" if free < 4 else "MEDIUM" if free < 8 else "HIGH"


def _country(data_center_id: str) -> str:
    region, _, rest = data_center_id.partition("-")
    return rest.split("-")[0] if region == "EU" else region
