"""Wire pieces shared by the Tailscale API stand-in's modules: its error answer and its
timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class ApiError(Exception):
    """Answered as `{"message": ..., "data": ...}` with `status` (Tailscale API errors;
    tailscale.com/client/tailscale/v2 decodes them into its APIError)."""

    def __init__(self, status: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"message": self.message}
        if self.data is not None:
            payload["data"] = self.data
        return payload


def iso(moment: datetime) -> str:
    """A timestamp as the API writes it: RFC 3339, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
