"""One logging setup for every queuelab process: the CLI's workers, the API server (uvicorn's
own loggers included), and the worker processes a pool starts.

The level and the format come from the command line (``--log-level``, ``--log-format``,
anywhere on it), else ``QUEUELAB_LOG_LEVEL`` / ``QUEUELAB_LOG_FORMAT``, else ``info`` and
``text``. ``json`` writes one JSON object per line: ``time``, ``level``, ``logger``,
``process``, ``message``, and the fields a line carries (a job's ``job_id``, ``task``,
``user_id``, ``queue``, ``attempt``, ...: passed as ``extra={"fields": {...}}``, shown after
the message in text).

Secrets: tokens are never logged (the API keeps only their digests), database URLs are
logged with their password hidden (``Database.describe``), and every line goes through
:class:`Redact`, which masks a URL's password and a bearer token should one reach a
message anyway (a driver's error text, say).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from queuelab.errors import ConfigError
from queuelab.models import Lease

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s%(fields_text)s"
_URL_PASSWORD = re.compile(r"(\w+(?:\+\w+)?://[^:/@\s]+:)([^@\s]+)(@)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def configure(level: str | None = None, fmt: str | None = None, env: Mapping[str, str] | None = None) -> None:
    """Set up the root logger once for this process (a second call changes the level and
    format). ``None``: the environment's, else the default."""
    env = os.environ if env is None else env
    level = _choice("--log-level", level or env.get("QUEUELAB_LOG_LEVEL") or "info", LEVELS)
    fmt = _choice("--log-format", fmt or env.get("QUEUELAB_LOG_FORMAT") or "text", FORMATS)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(Redact())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "queuelab", False)]:
        root.removeHandler(old)
    handler.queuelab = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, in our format
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def current() -> tuple[str, str]:
    """This process's level and format, for the worker processes it starts."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "queuelab", False)]
    fmt = "json" if ours and isinstance(ours[0].formatter, JsonFormatter) else "text"
    return logging.getLevelName(root.getEffectiveLevel()).lower(), fmt


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        record.fields_text = "".join(f" {k}={v}" for k, v in fields.items()) if fields else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class Redact(logging.Filter):
    """Masks a URL's password and a bearer token in a line's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _BEARER.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", message))
        if clean != message:
            record.msg, record.args = clean, None
        return True


def job_fields(lease: Lease) -> dict[str, object]:
    """A job's fields for a log line (``extra={"fields": job_fields(lease)}``)."""
    return {
        "job_id": lease.job_id,
        "task": lease.task,
        "user_id": lease.user_id,
        "queue": lease.queue,
        "attempt": lease.attempt,
    }


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    text = value.strip().lower()
    if text not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return text
