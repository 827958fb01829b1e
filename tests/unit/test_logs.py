"""queuelab.logs: one setup, text or JSON lines with the job's fields, the level and format
from the flag or QUEUELAB_LOG_*, and secrets masked should one reach a message."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from queuelab import ConfigError, logs
from queuelab.models import Lease


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured by queuelab.logs, writing to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield_buffer = io.StringIO()
    try:
        yield yield_buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _setup(buffer: io.StringIO, level: str | None, fmt: str | None, env: dict[str, str] | None = None) -> None:
    logs.configure(level, fmt, env=env or {})
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "queuelab", False))
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)


LEASE = Lease("j-1", "tok", "resize", {}, "alice", "images", 2, 3, 30.0, None, 0.0)


def test_a_json_line_carries_the_jobs_fields(captured: io.StringIO) -> None:
    _setup(captured, "info", "json")
    logging.getLogger("queuelab.jobs").info("job %s done", "j-1", extra={"fields": logs.job_fields(LEASE)})
    line = json.loads(captured.getvalue())
    assert {k: line[k] for k in ("level", "logger", "message", "job_id", "task", "user_id", "queue", "attempt")} == {
        "level": "info",
        "logger": "queuelab.jobs",
        "message": "job j-1 done",
        "job_id": "j-1",
        "task": "resize",
        "user_id": "alice",
        "queue": "images",
        "attempt": 2,
    }


def test_text_lines_show_the_fields_after_the_message(captured: io.StringIO) -> None:
    _setup(captured, None, None, env={"QUEUELAB_LOG_LEVEL": "debug"})
    logging.getLogger("x").debug("hello", extra={"fields": {"job_id": "j-1"}})
    assert captured.getvalue().rstrip().endswith("x DEBUG hello job_id=j-1")


def test_passwords_and_bearer_tokens_are_masked(captured: io.StringIO) -> None:
    _setup(captured, "info", "json")
    logging.getLogger("x").warning(
        "could not reach %s (sent Authorization: Bearer %s)", "postgresql://app:hunter2@db/q", "tok-123.abc"
    )
    message = json.loads(captured.getvalue())["message"]
    assert "hunter2" not in message
    assert "tok-123.abc" not in message
    assert "postgresql://app:***@db/q" in message


def test_a_bad_level_or_format_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="--log-format must be one of text, json, got 'xml'"):
        logs.configure("info", "xml", env={})
    with pytest.raises(ConfigError, match="--log-level must be one of debug, info, warning, error"):
        logs.configure(None, None, env={"QUEUELAB_LOG_LEVEL": "loud"})
