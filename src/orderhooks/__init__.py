"""orderhooks: self-hostable webhooks for restaurant order data."""

from __future__ import annotations

import importlib.metadata


def package_version() -> str:
    """The installed version of orderhooks (`--version`, the user-agent, the OpenAPI document)."""
    try:
        return importlib.metadata.version("orderhooks")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
