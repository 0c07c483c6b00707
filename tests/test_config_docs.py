"""Every setting is documented, and the brief's config keys work as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from margindash.config import Settings, setting_docs

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_docs_and_env_example() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for env, field in setting_docs():
        assert f"`{env}`" in docs, f"{env} missing from docs/configuration.md"
        assert field.description, f"{env} has no description"
    for env in (
        "MARGINDASH_API_KEY",
        "MARGINDASH_INGEST_URL",
        "MARGINDASH_DATABASE_URL",
        "STRIPE_WEBHOOK_SECRET",
        "STRICT_TOKEN_COUNTS",
        "TOKEN_ESTIMATE_FACTOR",
        "SMTP_HOST",
    ):
        assert f"{env}=" in example


def test_brief_config_yaml_keys_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "margindash.yaml"
    config.write_text("STRICT_TOKEN_COUNTS: false\nTOKEN_ESTIMATE_FACTOR: 1.3\n")
    monkeypatch.setenv("MARGINDASH_CONFIG", str(config))
    monkeypatch.delenv("STRICT_TOKEN_COUNTS", raising=False)
    settings = Settings()
    assert settings.strict_token_counts is False
    assert settings.token_estimate_factor == 1.3
    monkeypatch.setenv("TOKEN_ESTIMATE_FACTOR", "1.5")  # the environment wins over the file
    assert Settings().token_estimate_factor == 1.5


def test_links_follow_the_served_address_unless_a_public_url_is_set() -> None:
    from margindash.config import unset_public_url_warning

    unset = {"database_url": "sqlite://", "public_url": None}  # whatever the environment says
    local = Settings(**unset, host="127.0.0.1", port=9001)
    assert local.dashboard_url == "http://127.0.0.1:9001"
    assert unset_public_url_warning(local) is None  # on loopback, the address served is right
    # A worker cannot see a server's --port: it warns whatever the address.
    assert "not seen here" in str(unset_public_url_warning(local, worker=True))
    everywhere = Settings(**unset, host="0.0.0.0", port=8000)
    assert everywhere.dashboard_url.endswith(":8000") and "0.0.0.0" not in everywhere.dashboard_url
    assert "MARGINDASH_PUBLIC_URL is not set" in str(unset_public_url_warning(everywhere))
    assert Settings(**unset, host="::1", port=80).dashboard_url == "http://[::1]:80"
    published = Settings(database_url="sqlite://", host="0.0.0.0", public_url="https://m.example/")
    assert published.dashboard_url == "https://m.example"
    assert unset_public_url_warning(published, worker=True) is None
