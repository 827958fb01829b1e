"""The HTTP API and web dashboard: ``python -m queuelab.api``."""

from queuelab.api.app import create_app
from queuelab.api.auth import Principal, TokenBook
from queuelab.api.background import RunningApi, ServerError, serve

__all__ = ["Principal", "RunningApi", "ServerError", "TokenBook", "create_app", "serve"]
