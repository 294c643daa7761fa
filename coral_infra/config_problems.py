"""Problems in a stack's config, located as the user types the key, and reported together.

Pydantic reports an error at a location in the models (`('machines', 0, 'data_center')`);
users edit `coral:machines[0].dataCenter`. These functions translate one into the other,
through the models' camelCase aliases, and turn each error into a message that says what was
given and what is allowed (unknown keys list the keys allowed there; env names the program owns
name the setting to use instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from coral_infra.setting_values import RESERVED_ENV_ERROR, RESERVED_ENV_SETTINGS

NAMESPACE = "coral"
PLACEHOLDER_LOGINS_ERROR = "placeholder_logins"


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in stack config, located as the user would type the key."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class SettingsError(ValueError):
    """All problems of one stack config, raised before any resource is registered."""

    def __init__(self, problems: Iterable[ConfigProblem], source: str = "stack config") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through `list[...]` and `... | None`; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if getattr(annotation, "__origin__", None) is dict:
        return None
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _walk(loc: tuple[int | str, ...], root: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """Follow an error location through the models: the key path as the user spells it
    (`coral:machines[0].dataCenter`) and the model at its end (None inside plain values)."""
    path = NAMESPACE
    model: type[BaseModel] | None = root
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part == "[key]":  # pydantic's marker for a bad dict key: the key is already named
            continue
        field = None
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        name = (field.alias or part) if field is not None else part
        path += f":{name}" if index == 0 else f".{name}"
        model = _inner_model(field.annotation) if field is not None else None
    return path, model


def located_key(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    """The key path of an error location in `root`'s models."""
    return _walk(loc, root)[0]


def _allowed_keys(loc: tuple[int | str, ...], root: type[BaseModel]) -> list[str]:
    """The keys a model accepts at the location of an unknown key, for the error message."""
    model = _walk(loc[:-1], root)[1]
    if model is None:
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _reserved_env_message(loc: tuple[int | str, ...], name: str, root: type[BaseModel]) -> str:
    setting = RESERVED_ENV_SETTINGS.get(name)
    if setting is None:
        return (
            f"{name} belongs to the bootstrap (coral_infra/bootstrap/start.sh reads every TS_* "
            "and CORAL_* variable, and the program sets several); remove it from env: no "
            "setting changes it"
        )
    if not setting.startswith(f"{NAMESPACE}:"):
        setting = f"{located_key(loc[:2], root)}.{setting}"  # loc[:2] is ('machines', i)
    return f"{name} is set by coral-infra from {setting}; remove it from env and set {setting}"


def _placeholder_message(logins: list[str]) -> str:
    what = "is a placeholder" if len(logins) == 1 else "are placeholders"
    return (
        f"{', '.join(map(repr, logins))} {what} (a domain reserved for examples): no tailnet "
        "has such a user, so the tailnet's own test run would reject the policy at `up`; set "
        "allowed and denied to two real logins of your tailnet (admin console -> Users)"
    )


def problems_from(error: ValidationError, root: type[BaseModel]) -> list[ConfigProblem]:
    """Every error of a validation of `root`, as problems located by key path."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = located_key(loc, root)
        cause = item.get("ctx", {}).get("error")
        if item["type"] == "extra_forbidden":
            # The unknown key itself is spelled as the user typed it, never "corrected".
            key = f"{located_key(loc[:-1], root)}.{loc[-1]}"
            allowed = ", ".join(_allowed_keys(loc, root)) or "none"
            message = f"unknown key {str(loc[-1])!r} (a typo?); allowed here: {allowed}"
        elif item["type"] == RESERVED_ENV_ERROR:
            message = _reserved_env_message(loc, item["ctx"]["name"], root)
        elif item["type"] == PLACEHOLDER_LOGINS_ERROR:  # raised by the tailnet, about its tests
            key = f"{key}.policy.tests"
            message = _placeholder_message(item["ctx"]["logins"])
        elif item["type"] == "value_error":
            message = str(cause)
        else:
            message = f"got {item.get('input')!r}; {item['msg'][0].lower()}{item['msg'][1:]}"
        problems.append(ConfigProblem(key, message))
    return problems
