"""The optional parts of queuelab, and the error that names the extra to install.

The core (the queue, its worker, the CLI on SQLite) needs SQLAlchemy and croniter only.
Everything else is an extra of the ``queuelab-jobs`` distribution (pyproject.toml): a feature
that needs one asks :func:`require` first, so a missing package fails with the line to run
instead of a bare ``ModuleNotFoundError`` from deep inside an import.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from queuelab.errors import MissingExtra

# The name on the package index; the import name stays ``queuelab`` (PyPI's "queuelab" is
# an unrelated project).
DISTRIBUTION = "queuelab-jobs"

# What each extra's features import (pyproject.toml's optional dependencies, by import name).
POSTGRES = ("psycopg",)
API = ("fastapi", "starlette", "pydantic", "uvicorn", "prometheus_client")
LAB = ("pandas", "numpy", "tqdm")
REDIS = ("redis",)
BENCH = ("pandas", "numpy", "tqdm", "httpx")


def install_line(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(modules: tuple[str, ...], *, extra: str, feature: str) -> list[ModuleType]:
    """Import ``modules``, or raise :class:`MissingExtra` naming ``extra`` and the first one missing."""
    found = []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            raise MissingExtra(
                f"{feature} needs the {extra} extra ({exc.name or name} is not installed): {install_line(extra)}"
            ) from exc
    return found
