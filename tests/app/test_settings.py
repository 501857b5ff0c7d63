"""Settings: precedence flags > environment > TOML > defaults, validation, secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.app.runtime import Runtime
from sluiceway.app.secret import MASK, Secret
from sluiceway.app.settings import Settings, env_name, load_settings, load_settings_with_sources


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    """With no file, no environment and no flags every setting has its documented default."""
    settings = load_settings(environ={}, config_file=_write(tmp_path, ""))
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.webhook_path == "/webhook"
    assert settings.messages_per_second == 80  # the Cloud API's default throughput tier


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sluiceway.toml"
    path.write_text(text)
    return path


# A reference model of the precedence: the last source that sets a key wins.
ports = st.integers(min_value=1, max_value=65535)


@given(toml=st.none() | ports, env=st.none() | ports, flag=st.none() | ports)
def test_precedence_matches_reference_model(toml: int | None, env: int | None, flag: int | None) -> None:
    """For any combination of sources, the port comes from the highest-precedence source that sets it."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sluiceway.toml"
        path.write_text("" if toml is None else f"port = {toml}\n")
        environ = {} if env is None else {"SLUICEWAY_PORT": str(env)}
        settings = load_settings(flags={"port": flag}, environ=environ, config_file=path)
    expected = 8080
    for value in (toml, env, flag):
        if value is not None:
            expected = value
    assert settings.port == expected


@given(toml=st.none() | ports, env=st.none() | ports, flag=st.none() | ports)
def test_reported_source_matches_reference_model(toml: int | None, env: int | None, flag: int | None) -> None:
    """The source reported for a value is the highest-precedence one that set it; the others say default."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sluiceway.toml"
        path.write_text("" if toml is None else f"port = {toml}\n")
        environ = {} if env is None else {"SLUICEWAY_PORT": str(env)}
        settings, sources = load_settings_with_sources(flags={"port": flag}, environ=environ, config_file=path)
        assert settings == load_settings(flags={"port": flag}, environ=environ, config_file=path)
    expected = "default"
    for value, source in ((toml, f"file {path}"), (env, "environment SLUICEWAY_PORT"), (flag, "flag --port")):
        if value is not None:
            expected = source
    assert sources["port"] == expected
    assert set(sources) == set(Settings.__struct_fields__)
    assert {source for name, source in sources.items() if name != "port"} == {"default"}


def test_provider_environment_names_are_used_for_credentials(tmp_path: Path) -> None:
    """The five credentials come from WHATSAPP_* and GOOGLE_APPLICATION_CREDENTIALS, not SLUICEWAY_*."""
    environ = {
        "WHATSAPP_ACCESS_TOKEN": "tok",
        "WHATSAPP_APP_SECRET": "sec",
        "WHATSAPP_VERIFY_TOKEN": "ver",
        "WHATSAPP_PHONE_NUMBER_ID": "1234",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
    }
    settings = load_settings(environ=environ, config_file=_write(tmp_path, ""))
    assert settings.whatsapp_access_token is not None and settings.whatsapp_access_token.reveal() == "tok"
    assert settings.whatsapp_app_secret is not None and settings.whatsapp_app_secret.reveal() == "sec"
    assert settings.whatsapp_verify_token is not None and settings.whatsapp_verify_token.reveal() == "ver"
    assert settings.whatsapp_phone_number_id == "1234"
    assert settings.google_application_credentials == "/keys/sa.json"
    assert settings.missing_for_production() == ["spreadsheet_id"]
    assert env_name("port") == "SLUICEWAY_PORT"


def test_environment_strings_are_coerced(tmp_path: Path) -> None:
    """Environment values are strings and are converted to the setting's type."""
    environ = {
        "SLUICEWAY_DEDUP_WINDOW": "60.5",
        "SLUICEWAY_WORKERS": "3",
        "SLUICEWAY_HIGH_PRIORITY_KEYWORDS": "leak, fire ,gas",
        "SLUICEWAY_ENQUEUE_TIMEOUT": "0",
    }
    settings = load_settings(environ=environ, config_file=_write(tmp_path, ""))
    assert settings.dedup_window == 60.5
    assert settings.workers == 3
    assert settings.high_priority_keywords == ("leak", "fire", "gas")
    assert settings.enqueue_timeout == 0.0


def test_toml_file_is_read(tmp_path: Path) -> None:
    """Top-level keys of sluiceway.toml set the matching fields."""
    path = _write(tmp_path, 'spreadsheet_id = "abc"\nhigh_priority_keywords = ["leak"]\nworkers = 4\n')
    settings = load_settings(environ={}, config_file=path)
    assert (settings.spreadsheet_id, settings.high_priority_keywords, settings.workers) == ("abc", ("leak",), 4)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ({"flags": {"port": 70000}}, "port"),
        ({"flags": {"webhook_path": "webhook"}}, "webhook_path"),
        ({"flags": {"max_body_bytes": 0}}, "max_body_bytes"),
        ({"flags": {"dedup_window": -1.0}}, "dedup_window"),
        ({"flags": {"workers": 0}}, "workers"),
        ({"flags": {"sheets_read_requests_per_minute": 0}}, "sheets_read_requests_per_minute"),
        ({"environ": {"SLUICEWAY_MESSAGES_PER_SECOND": "0"}}, "messages_per_second"),
        ({"flags": {"admin_port": -1}}, "admin_port"),
        ({"flags": {"log_level": "LOUD"}}, "log_level"),
        ({"environ": {"SLUICEWAY_PORT": "eighty"}}, "port"),
        ({"environ": {"SLUICEWAY_ENQUEUE_TIMEOUT": "-2"}}, "enqueue_timeout"),
        ({"toml": "prot = 1\n"}, "prot"),
        ({"toml": 'port = "8080"\n'}, "port"),
        ({"flags": {"whatsapp_app_secret": "s"}}, "whatsapp_app_secret"),
    ],
)
def test_invalid_values_name_the_setting(tmp_path: Path, source: dict[str, object], name: str) -> None:
    """Every invalid value, unknown key or secret-as-flag raises ValueError naming the setting."""
    path = _write(tmp_path, str(source.get("toml", "")))
    with pytest.raises(ValueError, match=name):
        load_settings(
            flags=source.get("flags"),  # type: ignore[arg-type]
            environ=source.get("environ", {}),  # type: ignore[arg-type]
            config_file=path,
        )


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    """A config file named explicitly must exist."""
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(environ={}, config_file=tmp_path / "nope.toml")


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    """A config file that is not TOML is reported as such."""
    with pytest.raises(ValueError, match="not valid TOML"):
        load_settings(environ={}, config_file=_write(tmp_path, "port = = 1"))


def test_secrets_never_print(tmp_path: Path) -> None:
    """repr, str and redacted() of settings show a mask instead of any secret."""
    environ = {"WHATSAPP_ACCESS_TOKEN": "EAAGtopsecret", "WHATSAPP_APP_SECRET": "appsecret123"}
    settings = load_settings(environ=environ, config_file=_write(tmp_path, ""))
    for text in (repr(settings), str(settings), str(settings.redacted())):
        assert "topsecret" not in text and "appsecret123" not in text
        assert MASK in text


def test_secret_compares_by_value_and_hides_itself() -> None:
    """Secrets compare equal by value but never show it in repr or str."""
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert "a" not in repr(Secret("a")).replace("Secret", "") and str(Secret("a")) == MASK
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_worker_settings_round_trip_without_secrets(tmp_path: Path) -> None:
    """Workers get every setting but the WhatsApp secrets, rebuilt to equal values."""
    from sluiceway.app.settings import worker_settings_from_json

    environ = {"WHATSAPP_APP_SECRET": "s3cret", "WHATSAPP_ACCESS_TOKEN": "tok3n", "SLUICEWAY_WORKERS": "3"}
    settings = load_settings(environ=environ, config_file=_write(tmp_path, 'spreadsheet_id = "x"\n'))
    data = settings.worker_json()
    assert b"s3cret" not in data and b"tok3n" not in data
    rebuilt = worker_settings_from_json(data)
    assert rebuilt.whatsapp_app_secret is None and rebuilt.whatsapp_access_token is None
    assert (rebuilt.workers, rebuilt.spreadsheet_id, rebuilt.high_priority_keywords) == (
        3,
        "x",
        settings.high_priority_keywords,
    )
    with pytest.raises(ValueError, match="JSON object"):
        worker_settings_from_json(b"[1]")


def test_runtime_sends_at_the_configured_throughput_tier() -> None:
    """Without an explicit SenderConfig, ``sluiceway run`` sends within ``messages_per_second`` (the number's Cloud API
    tier).
    """
    runtime = Runtime("sluiceway.examples.property_bot.app:bot", Settings(messages_per_second=1000))
    assert runtime.sender_config.rate_limit.per_second == 1000
    assert Runtime("sluiceway.examples.property_bot.app:bot", Settings()).sender_config.rate_limit.per_second == 80
