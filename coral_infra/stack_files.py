"""Stack config as Pulumi holds it: a stack file read the way the Pulumi CLI reads it, or the
config map of the stack the engine runs. Values only, no validation (that is settings.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class _PulumiYamlLoader(yaml.SafeLoader):
    """YAML as the Pulumi CLI reads stack files (YAML 1.2: only true/false are booleans; an
    unquoted yes/no/on/off is text), so offline tools see the values `pulumi up` sees."""


_PulumiYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PulumiYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_config_file(path: Path) -> tuple[dict[str, Any], set[str]]:
    """A stack file's `config:` and which of its keys hold `secure:` ciphertext; ValueError
    (with the line) when the file is not a stack file."""
    try:
        document = yaml.load(path.read_text(), Loader=_PulumiYamlLoader) or {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"not valid YAML{where}: {error.problem}") from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config or {}, dict):
        raise ValueError("`config:` must be a mapping of keys to values")
    config = config or {}
    secure = {k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"}}
    return config, secure


def engine_config() -> tuple[dict[str, Any], set[str]]:
    """The whole config map of the stack the engine runs (not key by key through
    `pulumi.Config`, so that a typo'd key is reported instead of silently ignored), and which
    keys are secret."""
    from pulumi.runtime import config as engine

    config = {**engine.get_config_env(), **engine.CONFIG.get()}
    secret = set(engine.get_config_secret_keys_env())
    secret |= {key for key in config if engine.is_config_secret(key)}
    return config, secret
