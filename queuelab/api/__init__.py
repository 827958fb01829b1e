"""The HTTP API and web dashboard: ``python -m queuelab.api`` (the api extra).

Its names are loaded on first use, so ``python -m queuelab.api`` can say which extra is
missing before anything imports FastAPI."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from queuelab.extras import API, require

if TYPE_CHECKING:
    from queuelab.api.app import create_app
    from queuelab.api.auth import Principal, TokenBook
    from queuelab.api.background import RunningApi, ServerError, serve

__all__ = ["Principal", "RunningApi", "ServerError", "TokenBook", "create_app", "serve"]

_HOMES = {
    "create_app": "app",
    "Principal": "auth",
    "TokenBook": "auth",
    "RunningApi": "background",
    "ServerError": "background",
    "serve": "background",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'queuelab.api' has no attribute {name!r}")
    require(API, extra="api", feature="queuelab.api")
    return getattr(importlib.import_module(f"queuelab.api.{home}"), name)
