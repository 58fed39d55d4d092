"""Settings: embedded defaults, URL normalisation, the generated secret key, one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from iap.config import ConfigError, Settings, load_settings, parse_rate

SECRET = "s" * 48


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``IAP_*`` variable and no ``.env`` from outside reaches the settings under test."""
    for name in list(os.environ):
        if name.startswith("IAP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_one_line(error: BaseException, *fragments: str) -> None:
    message = str(error)
    assert message
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_defaults_are_the_embedded_deployment(tmp_path: Path) -> None:
    settings = load_settings()
    data = (tmp_path / "data").resolve()
    assert settings.data_dir == Path("data")
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{data / 'iap.db'}"
    assert settings.resolved_storage_url == (data / "blobs").as_uri()
    assert settings.redis_url is None
    assert settings.is_sqlite
    assert settings.should_auto_migrate
    assert settings.secret_key is None
    assert settings.s3_presign_downloads is False


def test_data_dir_moves_every_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IAP_DATA_DIR", str(tmp_path / "elsewhere"))
    settings = load_settings()
    assert settings.resolved_database_url.endswith(f"{tmp_path / 'elsewhere' / 'iap.db'}")
    assert settings.resolved_storage_url == (tmp_path / "elsewhere" / "blobs").as_uri()
    assert (tmp_path / "elsewhere" / "secret_key").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "postgres://iap:pw@db.example:5432/iap",
        "postgresql://iap:pw@db.example:5432/iap",
        "postgresql+asyncpg://iap:pw@db.example:5432/iap",
    ],
)
def test_postgres_urls_are_normalised_to_asyncpg(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAP_DATABASE_URL", url)
    monkeypatch.setenv("IAP_SECRET_KEY", SECRET)
    settings = load_settings()
    assert settings.resolved_database_url == "postgresql+asyncpg://iap:pw@db.example:5432/iap"
    assert not settings.is_sqlite
    assert not settings.should_auto_migrate  # PostgreSQL is migrated as a release step


def test_plain_sqlite_url_gets_the_async_driver(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"


def test_auto_migrate_can_be_forced_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAP_AUTO_MIGRATE", "false")
    assert load_settings().should_auto_migrate is False
    monkeypatch.setenv("IAP_AUTO_MIGRATE", "true")
    monkeypatch.setenv("IAP_DATABASE_URL", "postgresql://db/iap")
    monkeypatch.setenv("IAP_SECRET_KEY", SECRET)
    assert load_settings().should_auto_migrate is True


def test_embedded_secret_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "state"
    first = load_settings(data_dir=data)
    key_file = data / "secret_key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.signing_key
    assert len(key) >= 32
    assert key_file.read_text().strip() == key
    assert load_settings(data_dir=data).signing_key == key
    assert Settings(data_dir=data).signing_key == key  # another process reads the same key


def test_separate_data_dirs_get_separate_keys(tmp_path: Path) -> None:
    one = load_settings(data_dir=tmp_path / "one").signing_key
    two = load_settings(data_dir=tmp_path / "two").signing_key
    assert one != two


def test_configured_secret_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", secret_key=SECRET)
    assert settings.signing_key == SECRET
    assert not (tmp_path / "d" / "secret_key").exists()


def test_secret_key_is_hidden_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAP_SECRET_KEY", SECRET)
    settings = load_settings()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_non_sqlite_database_without_secret_key_is_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IAP_DATABASE_URL", "postgresql://iap@db/iap")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert_one_line(caught.value, "IAP_SECRET_KEY")


def test_short_secret_key_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(secret_key="x" * 31)
    assert_one_line(caught.value, "IAP_SECRET_KEY", "32")


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("IAP_DATABASE_URL", "mysql://x", "IAP_DATABASE_URL"),
        ("IAP_STORAGE_URL", "ftp://x", "IAP_STORAGE_URL"),
        ("IAP_REDIS_URL", "http://x", "IAP_REDIS_URL"),
        ("IAP_MAX_UPLOAD_BYTES", "0", "IAP_MAX_UPLOAD_BYTES"),
        ("IAP_ACCESS_TOKEN_TTL_SECONDS", "-5", "IAP_ACCESS_TOKEN_TTL_SECONDS"),
        ("IAP_PORT", "70000", "IAP_PORT"),
        ("IAP_LOG_LEVEL", "loud", "IAP_LOG_LEVEL"),
    ],
)
def test_invalid_values_are_one_line_config_errors_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert_one_line(caught.value, "invalid configuration", fragment)


@pytest.mark.parametrize("rate", ["abc", "0/60", "10/0", "-1/60", "10", "10/abc", "/60", ""])
@pytest.mark.parametrize("name", ["login_rate_limit", "signup_rate_limit", "upload_rate_limit"])
def test_bad_rate_strings_are_rejected_with_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, rate: str
) -> None:
    monkeypatch.setenv(f"IAP_{name.upper()}", rate)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert_one_line(caught.value, f"IAP_{name.upper()}", "e.g. 10/60", repr(rate))


def test_bad_rate_passed_to_settings_directly_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        Settings(upload_rate_limit="0/60")


@pytest.mark.parametrize(("rate", "parsed"), [("10/60", (10, 60)), ("1/1", (1, 1))])
def test_good_rate_strings_parse(rate: str, parsed: tuple[int, int]) -> None:
    assert parse_rate(rate) == parsed


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("IAP_PORT=9123\nIAP_LOG_LEVEL=debug\n")
    settings = load_settings()
    assert (settings.port, settings.log_level) == (9123, "debug")
    monkeypatch.setenv("IAP_PORT", "9456")
    assert load_settings().port == 9456


def test_unknown_iap_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAP_SOMETHING_ELSE", "whatever")
    assert load_settings().port == 8000


def test_embedded_passes_run_in_one_child_process_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().analysis_processes == 1
    monkeypatch.setenv("IAP_ANALYSIS_PROCESSES", "0")
    assert load_settings().analysis_processes == 0  # in the worker's threads
    monkeypatch.setenv("IAP_ANALYSIS_PROCESSES", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert_one_line(caught.value, "IAP_ANALYSIS_PROCESSES")
