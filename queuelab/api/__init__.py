"""The HTTP API and web dashboard: ``python -m queuelab.api``."""

from queuelab.api.app import create_app
from queuelab.api.auth import Principal, TokenBook

__all__ = ["Principal", "TokenBook", "create_app"]
