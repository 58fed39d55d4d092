"""An admin account, made the only way there is: ``iap create-user --admin`` on the CLI, against
the same database as the app under test."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from iap.cli.main import app as cli
from iap.config import Settings
from tests.cli.helpers import CLEAN_ENV
from tests.conftest import settings_env
from tests.factories import PASSWORD, Account, login


def cli_env(settings: Settings) -> dict[str, str | None]:
    """The CLI's environment: exactly ``settings``, every other IAP_ setting unset."""
    return CLEAN_ENV | dict(settings_env(settings))


def run_create_user(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, ["create-user", *args], env=cli_env(settings))


@pytest.fixture
def admin(client: TestClient, settings: Settings) -> Account:
    username = f"admin_{secrets.token_hex(5)}"
    email = f"{username}@example.com"
    result = run_create_user(
        settings, username, "--email", email, "--password", PASSWORD, "--admin"
    )
    assert result.exit_code == 0, result.output
    tokens = login(client, username, PASSWORD)
    me = client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "admin"
    return Account(
        id=me.json()["id"],
        username=username,
        email=email,
        password=PASSWORD,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )
