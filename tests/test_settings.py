"""Configuration: one table drives defaults, env, flags, validation and the README."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from cli import build_parser
from settings import SETTINGS, Settings, SettingsError, load_settings, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.db, settings.workers) == (
        "127.0.0.1",
        7091,
        "./hookd.db",
        8,
    )
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.shutdown_grace_s == 30
    assert (settings.llm_provider, settings.llm_base_url) == ("openai", "http://127.0.0.1:11434/v1")


def test_every_setting_is_a_field_and_back() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == [s.name for s in SETTINGS]


def test_flags_override_env_override_defaults() -> None:
    args = build_parser().parse_args(["serve", "--port", "8000"])
    settings = load_settings(environ={"HOOKD_PORT": "9000", "HOOKD_WORKERS": "3"}, args=args)
    assert settings.port == 8000 and settings.workers == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOOKD_PORT": "seventy"}, "HOOKD_PORT = 'seventy'"),
        ({"HOOKD_WORKERS": "-1"}, "must be 0 or more"),
        ({"HOOKD_LEASE_S": "0.5"}, "must be at least 1"),
        ({"HOOKD_SYNC": "off"}, "must be one of full, normal"),
        ({"HOOKD_LLM_PROVIDER": "gemini"}, "must be one of openai, anthropic, echo"),
        ({"HOOKD_PUBLIC_URL": "hooks.example.org"}, "http:// or https://"),
        ({"HOOKD_SHUTDOWN_GRACE_S": "nan"}, "must be 0 or more"),
        ({"HOOKD_KEEPALIVE_TIMEOUT_S": "0"}, "HOOKD_KEEPALIVE_TIMEOUT_S = '0': must be more than 0"),
        ({"HOOKD_ADMIN_KEY": "short"}, "at least 16 characters"),
        ({"HOOKD_METRICS_KEY": "short"}, "HOOKD_METRICS_KEY = (hidden): must be at least 16 characters"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(environ=env)


def test_secrets_are_env_only_and_never_shown() -> None:
    flags = build_parser().parse_args(["serve"])
    assert not any(hasattr(flags, name) for name in ("admin_key", "metrics_key", "llm_api_key"))
    settings = load_settings(
        environ={
            "HOOKD_ADMIN_KEY": "s3cret-admin-0123456789",
            "HOOKD_METRICS_KEY": "s3cret-metrics-0123456789",
            "HOOKD_LLM_API_KEY": "sk-s3cret",
        }
    )
    assert settings.metrics_key == "s3cret-metrics-0123456789"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- settings-table")
    end = text.index("<!-- /settings-table -->")
    table = text[start:end].split("\n", 1)[1].strip()
    assert table == markdown_table(), "README's table is stale: paste the output of `hookd settings`"


def test_a_cut_short_admin_key_file_is_replaced(tmp_path: Path) -> None:
    from server import admin_key_path, load_admin_key

    settings = load_settings(environ={"HOOKD_DB": str(tmp_path / "hookd.db")})
    admin_key_path(settings).write_text("\n")  # a crash while it was first written
    key = load_admin_key(settings)
    assert len(key) >= 16
    assert admin_key_path(settings).read_text().strip() == key
    assert load_admin_key(settings) == key  # and kept from then on
