"""Settings: keyword arguments > QUEUELAB_* environment variables > defaults, each value
checked once. Environment variables come from an ``env`` dict, never from ``os.environ``.

A bad value raises ConfigError naming the setting as the caller spelled it (``lease_seconds``
for a keyword, ``QUEUELAB_LEASE_SECONDS`` for a variable), the value and the form expected.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from queuelab import ConfigError, InvalidArgument, Queue, Settings
from queuelab.config import _PARSERS
from queuelab.limits import RateLimit


def env_var(name: str) -> str:
    return "QUEUELAB_" + name.upper()


def test_defaults_apply_when_neither_keyword_nor_variable_is_given() -> None:
    settings = Settings.load(env={})

    assert settings == Settings()
    assert settings.database_url == "sqlite:///queuelab.db"
    assert settings.lease_seconds == 30.0
    assert settings.max_retries == 3
    assert settings.sqlite_synchronous == "NORMAL"


# (setting, environment text, value parsed from it, keyword value, value parsed from that)
PRECEDENCE_CASES = [
    ("lease_seconds", "12", 12.0, 5, 5.0),
    ("max_retries", "7", 7, 1, 1),
    ("max_payload_bytes", "2048", 2048, 4096, 4096),
    ("sqlite_synchronous", "full", "FULL", "off", "OFF"),
    ("database_url", "sqlite:///from-env.db", "sqlite:///from-env.db", "sqlite:///kw.db", "sqlite:///kw.db"),
    ("retention_seconds", "60", 60.0, 120, 120.0),
    ("postgres_pooling", "Transaction", "transaction", "session", "session"),
    ("listen_url", "postgresql://a@h/db", "postgresql://a@h/db", "postgresql://b@h/db", "postgresql://b@h/db"),
]


@pytest.mark.parametrize(("name", "env_text", "from_env", "keyword", "from_keyword"), PRECEDENCE_CASES)
def test_an_environment_variable_overrides_the_default(
    name: str, env_text: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    settings = Settings.load(env={env_var(name): env_text})

    assert getattr(settings, name) == from_env


@pytest.mark.parametrize(("name", "env_text", "from_env", "keyword", "from_keyword"), PRECEDENCE_CASES)
def test_a_keyword_overrides_the_environment_variable(
    name: str, env_text: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    settings = Settings.load(env={env_var(name): env_text}, **{name: keyword})

    assert getattr(settings, name) == from_keyword


def test_a_keyword_of_none_falls_back_to_the_environment_then_the_default() -> None:
    assert Settings.load(env={"QUEUELAB_LEASE_SECONDS": "12"}, lease_seconds=None).lease_seconds == 12.0
    assert Settings.load(env={}, lease_seconds=None).lease_seconds == 30.0


def test_a_blank_environment_variable_counts_as_unset() -> None:
    settings = Settings.load(env={"QUEUELAB_LEASE_SECONDS": "   ", "QUEUELAB_MAX_RETRIES": ""})

    assert settings.lease_seconds == 30.0
    assert settings.max_retries == 3


def test_environment_values_are_stripped() -> None:
    assert Settings.load(env={"QUEUELAB_MAX_RETRIES": " 5 \n"}).max_retries == 5


# (setting, bad value, the expected form the message must state)
BAD_VALUES = [
    ("lease_seconds", "abc", "a number of seconds > 0 and <= 86400"),
    ("lease_seconds", -1, "a number of seconds > 0 and <= 86400"),
    ("lease_seconds", 0, "a number of seconds > 0 and <= 86400"),
    ("max_retries", 1.5, "a whole number between 0 and 100"),
    ("max_retries", -1, "a whole number between 0 and 100"),
    ("max_retries", "x", "a whole number between 0 and 100"),
    ("sqlite_synchronous", "FAST", "one of OFF, NORMAL, FULL, EXTRA"),
    ("database_url", "mysql://x", "an SQLAlchemy URL for SQLite (sqlite:///path.db) or PostgreSQL"),
]


def bad_value_message(name: str, form: str, value: Any) -> str:
    return f"^{re.escape(name)} must be {re.escape(form)}.*got {re.escape(repr(value))}$"


@pytest.mark.parametrize(("name", "value", "form"), BAD_VALUES)
def test_a_bad_keyword_value_names_the_keyword_the_value_and_the_form(name: str, value: Any, form: str) -> None:
    with pytest.raises(ConfigError, match=bad_value_message(name, form, value)):
        Settings.load(env={}, **{name: value})


@pytest.mark.parametrize(("name", "value", "form"), BAD_VALUES)
def test_a_bad_environment_value_names_the_variable_the_value_and_the_form(name: str, value: Any, form: str) -> None:
    text = str(value)

    with pytest.raises(ConfigError, match=bad_value_message(env_var(name), form, text)):
        Settings.load(env={env_var(name): text})


def test_an_unknown_setting_is_refused_and_the_known_ones_listed() -> None:
    with pytest.raises(ConfigError, match=r"^unknown setting 'lease_secs'; known settings: .*\blease_seconds\b"):
        Settings.load(env={}, lease_secs=10)


def test_config_error_is_an_invalid_argument_and_a_value_error() -> None:
    with pytest.raises(InvalidArgument):
        Settings.load(env={}, lease_seconds=-1)
    with pytest.raises(ValueError, match="lease_seconds"):
        Settings.load(env={}, lease_seconds=-1)


@pytest.mark.parametrize("text", ["none", "None", "NONE"])
def test_retention_none_means_keep_finished_jobs_forever(text: str) -> None:
    assert Settings.load(env={}, retention_seconds=text).retention_seconds is None
    assert Settings.load(env={"QUEUELAB_RETENTION_SECONDS": text}).retention_seconds is None


def test_queue_keywords_are_settings_too() -> None:
    with pytest.raises(ConfigError, match=r"^lease_seconds must be .*got 0$"):
        Queue("sqlite:///unused.db", lease_seconds=0)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused_when_the_queue_opens_it(url: str) -> None:
    with Queue(url) as q, pytest.raises(ConfigError, match=rf"^database_url '{re.escape(url)}' names an in-memory"):
        q.stats()  # the database is opened on first use


def test_an_in_memory_sqlite_message_says_what_to_give_instead() -> None:
    with Queue("sqlite://") as q, pytest.raises(ConfigError, match=r"give a file path such as sqlite:///"):
        q.stats()


def test_a_sqlite_file_in_a_missing_folder_is_refused_naming_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "no-such-folder"
    url = f"sqlite:///{folder / 'x.db'}"

    with Queue(url) as q, pytest.raises(ConfigError, match=rf"the folder '{re.escape(str(folder))}' does not exist"):
        q.stats()
    assert not folder.exists()  # nothing was created on the way


# -- checked on construction, however a Settings is built -------------------------------

# (keyword, bad value, the form the message must state): the review's examples
CONSTRUCTED_BADLY = [
    ("lease_seconds", -1, "a number of seconds > 0 and <= 86400"),
    ("prefetch", -5, "auto or a whole number between 0 and 10000"),
    ("database_url", "mysql://x", "an SQLAlchemy URL for SQLite (sqlite:///path.db) or PostgreSQL"),
    ("poll_interval_seconds", 0, "a number of seconds > 0 and <= 3600"),
    ("max_retries", 10**9, "a whole number between 0 and 100"),
    ("max_retries", True, "a whole number between 0 and 100"),
    ("sqlite_synchronous", "FAST", "one of OFF, NORMAL, FULL, EXTRA"),
    ("max_running_per_user", -3, "a whole number between 0 and 1000000000"),
    ("rate_limit", "lots", "N/unit"),
    ("postgres_pooling", "statement", "one of session, transaction"),
    ("listen_url", "sqlite:///x.db", "a PostgreSQL URL (postgresql://user@host:5432/db)"),
]


@pytest.mark.parametrize(("name", "value", "form"), CONSTRUCTED_BADLY)
def test_settings_built_directly_are_checked(name: str, value: Any, form: str) -> None:
    with pytest.raises(ConfigError, match=bad_value_message(name, form, value)):
        Settings(**{name: value})


@pytest.mark.parametrize(("name", "value", "form"), CONSTRUCTED_BADLY)
def test_settings_changed_are_checked(name: str, value: Any, form: str) -> None:
    with pytest.raises(ConfigError, match=bad_value_message(name, form, value)):
        Settings().with_changes(**{name: value})


def test_a_queue_given_bad_settings_fails_when_they_are_built_not_at_the_first_task() -> None:
    with pytest.raises(ConfigError, match=r"^max_retries must be a whole number between 0 and 100, got -3$"):
        Queue(settings=Settings(max_retries=-3))


def test_settings_built_directly_keep_the_parsed_form() -> None:
    settings = Settings(lease_seconds="12", max_retries="4", sqlite_synchronous="full", rate_limit="60/minute")  # type: ignore[arg-type]

    assert (settings.lease_seconds, settings.max_retries, settings.sqlite_synchronous) == (12.0, 4, "FULL")
    assert settings.rate_limit == RateLimit(60, 60.0)
    assert Settings(max_active_per_user=0).max_active_per_user is None  # 0 switches it off
    loaded = Settings.load(env={}, lease_seconds=12, max_retries=4, sqlite_synchronous="FULL", rate_limit="60/minute")
    assert settings == loaded


def test_every_default_is_valid_as_it_stands() -> None:
    """__post_init__ skips a field that still holds its default (Settings() stays cheap), so
    the defaults are checked here: each passes its own parser unchanged."""
    defaults = Settings()
    assert {f.name for f in fields(Settings)} == set(_PARSERS)
    for name, parse in _PARSERS.items():
        assert parse(name, getattr(defaults, name)) == getattr(defaults, name), name


def test_with_changes_refuses_an_unknown_setting() -> None:
    with pytest.raises(ConfigError, match=r"^unknown setting 'lease_secs'; known settings: "):
        Settings().with_changes(lease_secs=10)


def test_with_changes_keeps_the_other_fields_and_checks_the_new_ones() -> None:
    base = Settings(lease_seconds=5, prefetch=2)
    changed = base.with_changes(max_retries="7")

    assert (changed.lease_seconds, changed.prefetch, changed.max_retries) == (5.0, 2, 7)
