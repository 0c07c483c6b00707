"""Every operation of the running app, read from its own OpenAPI schema, ready to call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from margindash.app import create_app
from margindash.config import Settings

_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the template: /v1/usage/{request_id}
    spec: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, values: dict[str, str], default: str = "x") -> str:
        """The path with each `{name}` replaced by `values[name]` (or `default`)."""
        return _PARAMETER.sub(lambda m: values.get(m.group(1), default), self.path)

    @property
    def query_names(self) -> set[str]:
        return {p["name"] for p in self.spec.get("parameters", []) if p["in"] == "query"}

    @property
    def has_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH")


def operations(app: FastAPI) -> list[Operation]:
    """Every (method, path) in the app's OpenAPI schema, in schema order."""
    return [
        Operation(method.upper(), path, spec)
        for path, methods in app.openapi()["paths"].items()
        for method, spec in methods.items()
    ]


def safe_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for an app under attack: the price sync reads a local file, never the network."""
    return Settings(
        database_url=database_url, pricing_url=str(tmp_path / "no-such-prices.json"), **overrides
    )


def schema_operations() -> list[Operation]:
    """The operations of an app built with default settings (nothing is connected)."""
    return operations(create_app(Settings(database_url="sqlite://")))
