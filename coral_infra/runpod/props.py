"""Property helpers shared by the pod and network volume providers (no `runpod` import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc


def is_unknown(value: Any) -> bool:
    """Whether a preview value is not known yet.

    The engine hands dynamic providers an `Unknown` (the SDK 3.27x form), or the sentinel
    string when deserialized without keeping unknowns; an unknown secret (the auth key before
    its key exists) arrives as a secret wrapping None.
    """
    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
        if value is None:
            return True
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def whole_number(value: Any) -> Any:
    """Integers come back as floats from the engine (pulumi/pulumi#13830); undo that."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def has_control_chars(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def changed_fields(
    olds: Mapping[str, Any], news: Mapping[str, Any], fields: tuple[str, ...]
) -> list[str]:
    """Fields whose new value differs from the old one (unknown counts as changed)."""
    return [
        name
        for name in fields
        if is_unknown(news.get(name))
        or whole_number(olds.get(name)) != whole_number(news.get(name))
    ]


def check_int(
    failures: list[pulumi.dynamic.CheckFailure], news: dict[str, Any], name: str, minimum: int
) -> None:
    """Normalise `news[name]` to an int in place, recording a failure if it is not one."""
    value = whole_number(news.get(name))
    if is_unknown(value):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        failures.append(
            pulumi.dynamic.CheckFailure(
                name, f"{name} must be a whole number >= {minimum}, got {value!r}"
            )
        )
        return
    news[name] = value
