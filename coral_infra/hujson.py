"""A reader for HuJSON, the JSON dialect Tailscale's policy file is written in.

HuJSON is JSON plus `//` and `/* */` comments and trailing commas before `]` and `}`. Nothing
else (no single quotes, no unquoted keys), so the reader only blanks those two extensions out
and leaves the rest to :mod:`json`: what it accepts is exactly what the control plane accepts,
and error positions still point at the user's file because every removed character becomes a
space (newlines are kept).
"""

from __future__ import annotations

import json
from typing import Any


class HujsonError(ValueError):
    """A policy file that is not valid HuJSON, located as `source:line:column`."""


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _skip_blank(text: str, index: int) -> int:
    """Index of the next character that is neither whitespace nor inside a comment."""
    while index < len(text):
        if text[index] in " \t\r\n":
            index += 1
        elif text.startswith("//", index):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end < 0:
                return len(text)
            index = end + 2
        else:
            return index
    return index


def standardize(text: str, source: str = "<hujson>") -> str:
    """The same document as plain JSON text, with comments and trailing commas blanked out."""
    out = list(text)
    index = 0
    previous = ""  # the last character outside strings and comments that was not blank
    while index < len(text):
        char = text[index]
        if char == '"':
            previous = char
            index += 1
            while index < len(text) and text[index] != '"':
                if text[index] == "\n":
                    break  # json reports the unterminated string at its real position
                index += 2 if text[index] == "\\" else 1
            index += 1
        elif text.startswith("//", index):
            end = text.find("\n", index)
            end = len(text) if end < 0 else end
            out[index:end] = " " * (end - index)
            index = end
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end < 0:
                line, column = _position(text, index)
                raise HujsonError(f"{source}:{line}:{column}: comment '/*' is never closed")
            out[index : end + 2] = [c if c == "\n" else " " for c in text[index : end + 2]]
            index = end + 2
        elif char == ",":
            following = _skip_blank(text, index + 1)
            # Only a comma after a value is trailing; '[,]' stays for json to reject.
            if previous not in "[{," and following < len(text) and text[following] in "]}":
                out[index] = " "
            previous = char
            index += 1
        else:
            if char not in " \t\r\n":
                previous = char
            index += 1
    return "".join(out)


def loads(text: str, source: str = "<hujson>") -> Any:
    """Parse HuJSON text; errors name `source`, line and column."""
    try:
        return json.loads(standardize(text, source))
    except json.JSONDecodeError as error:
        raise HujsonError(f"{source}:{error.lineno}:{error.colno}: {error.msg}") from None
