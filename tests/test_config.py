"""Settings: keyword arguments > QUEUELAB_* environment variables > defaults, each value
checked once. Environment variables come from an ``env`` dict, never from ``os.environ``.

A bad value raises ConfigError naming the setting as the caller spelled it (``lease_seconds``
for a keyword, ``QUEUELAB_LEASE_SECONDS`` for a variable), the value and the form expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from queuelab import ConfigError, InvalidArgument, Queue, Settings


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
