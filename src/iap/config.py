"""The one settings object: every knob is an ``IAP_*`` environment variable (or a line in ``.env``).

Settings are validated when they are loaded, so a misconfiguration stops the process at start-up
with one clear line instead of failing at the first request.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(Exception):
    """The configuration cannot work; the message is one line that says what to change."""


PositiveInt = Annotated[int, Field(gt=0)]


class Rate(NamedTuple):
    """A rate limit: at most ``requests`` in any span of ``seconds`` (written N/seconds)."""

    requests: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds}"


def parse_rate(value: str) -> Rate:
    """Parse ``"N/seconds"`` into ``Rate(N, seconds)``."""
    try:
        count, _, period = value.partition("/")
        parsed = Rate(int(count), int(period))
    except ValueError:
        raise ValueError(f"a rate must look like N/seconds, e.g. 10/60, not {value!r}") from None
    if parsed.requests <= 0 or parsed.seconds <= 0:
        raise ValueError(f"a rate must be two positive numbers, e.g. 10/60, not {value!r}")
    return parsed


def _rate_from_text(value: object) -> object:
    return parse_rate(value) if isinstance(value, str) else value


# Written N/seconds in the environment (not JSON) and when settings are dumped; a ``Rate``
# everywhere in the code.
RateSetting = Annotated[
    Rate, NoDecode, BeforeValidator(_rate_from_text), PlainSerializer(str, return_type=str)
]


class Settings(BaseSettings):
    """iap configuration. See ``docs/configuration.md`` for every setting."""

    model_config = SettingsConfigDict(
        env_prefix="IAP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(
        Path("data"), description="Where the embedded defaults keep their files."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset = SQLite file in the data dir."
    )
    storage_url: str | None = Field(
        None, description="file:///path or s3://bucket[/prefix]; unset = data dir."
    )
    redis_url: str | None = Field(
        None, description="Redis for cache and rate limits; unset = in-process."
    )
    redis_prefix: str = Field("iap:", description="Prefix of every Redis key iap writes.")
    broker_url: str | None = Field(
        None, description="amqp://... or redis://... for Dramatiq; unset = in-process worker."
    )
    queue_name: str = Field("iap-analysis", description="Broker queue of analysis jobs.")
    worker_threads: PositiveInt = Field(
        2, description="Analysis threads: in the API process (embedded) or per worker process."
    )
    analysis_processes: int = Field(
        1,
        ge=0,
        description="Child processes that run the analysis passes of an in-process (embedded) "
        "worker, so that their CPU work never holds the API's event loop up; 0 runs them in "
        "the worker's threads. `iap worker` processes run passes in their own threads.",
    )
    disabled_analysers: str = Field(
        "", description="Comma-separated analyser names not to run (e.g. text for no OCR)."
    )
    analysis_max_retries: int = Field(3, ge=0, description="Retries before a job is dead.")
    analysis_min_backoff_ms: PositiveInt = 2_000
    analysis_max_backoff_ms: PositiveInt = 300_000
    analysis_time_limit_seconds: PositiveInt = Field(300, description="Per attempt.")
    analysis_lease_seconds: PositiveInt = Field(
        30,
        description="A running job whose worker gave no sign of life for this long is taken "
        "over by another worker (workers renew it every third of it).",
    )
    face_grouping_distance: float = Field(
        0.4,
        gt=0,
        le=2,
        description="Faces closer than this (Euclidean distance of their embeddings) are "
        "grouped as one person; the default is measured (iap.people.clustering).",
    )
    face_grouping_delay_ms: int = Field(
        2_000,
        ge=0,
        description="Grouping waits this long after an analysis that found faces, so that "
        "one grouping places the faces of a burst of uploads.",
    )
    webhook_allow_private: bool = Field(
        False, description="Allow webhooks to loopback/private addresses (off: SSRF guard)."
    )
    webhook_max_retries: int = Field(5, ge=0)
    webhook_min_backoff_ms: PositiveInt = 1_000
    webhook_max_backoff_ms: PositiveInt = 300_000
    webhook_timeout_seconds: PositiveInt = 10
    reconcile_interval_seconds: PositiveInt = Field(
        60, description="How often queued/running jobs are checked against the broker."
    )
    reconcile_after_seconds: PositiveInt = Field(
        900, description="A job untouched this long is handed to the broker again."
    )
    secret_key: SecretStr | None = Field(
        None, description="JWT signing key; generated in the data dir when embedded."
    )
    auto_migrate: bool | None = Field(
        None, description="Apply migrations at start-up; default: on for SQLite only."
    )

    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_downloads: bool = Field(
        False, description="Answer downloads with a 307 to a presigned S3 URL."
    )
    s3_presign_ttl_seconds: PositiveInt = 300

    access_token_ttl_seconds: PositiveInt = 15 * 60
    refresh_token_ttl_seconds: PositiveInt = 14 * 24 * 3600
    session_ttl_seconds: PositiveInt = Field(
        7 * 24 * 3600, description="How long a web UI sign-in lasts (its cookie's lifetime)."
    )
    secure_cookies: bool | None = Field(
        None,
        description="Mark web UI cookies Secure; default: when the request came over HTTPS.",
    )
    jwt_issuer: str = "iap"

    max_upload_bytes: PositiveInt = 50_000_000
    # Pillow refuses anything over twice its own limit (about 179 MP) before iap's check runs.
    max_image_pixels: int = Field(100_000_000, gt=0, le=2 * 89_478_485)
    max_image_side: PositiveInt = 65_535
    decode_concurrency: PositiveInt = Field(
        2, description="Uploads validated (decoded) at once per API process; bounds memory."
    )

    cache_ttl_seconds: PositiveInt = 300
    login_rate_limit: RateSetting = Field(
        Rate(10, 60), description="Login attempts per user+address: N/seconds."
    )
    signup_rate_limit: RateSetting = Field(
        Rate(20, 3600), description="Sign-ups per address: N/seconds."
    )
    upload_rate_limit: RateSetting = Field(
        Rate(300, 60), description="Uploads per user: N/seconds."
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="Reverse proxies whose X-Forwarded-For/-Proto `iap serve` believes: "
        "comma-separated addresses or networks, or * for any.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = Field(
        "console", description="console: readable lines; json: one JSON object a line."
    )
    shutdown_timeout_seconds: PositiveInt = Field(
        30, description="After SIGTERM, how long `iap serve` lets in-flight requests finish."
    )
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Where `iap worker` serves /metrics; unset = nowhere."
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address `iap worker` binds its metrics port to."
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_forwarded_allow_ips(cls, value: str) -> str:
        # uvicorn silently ignores an entry it cannot parse (the proxy would then be distrusted
        # and every client would look like the proxy): refuse it here, with its name.
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if "*" in entries:
            return "*"
        for entry in entries:
            try:
                ipaddress.ip_network(entry)  # an address is a one-address network
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address, a network such as 10.0.0.0/8, or *"
                ) from None
        return ",".join(entries)

    @model_validator(mode="after")
    def _check_urls(self) -> Settings:
        scheme = urlsplit(self.resolved_database_url).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(
                f"IAP_DATABASE_URL scheme {scheme!r} is not supported: use sqlite+aiosqlite:// "
                "or postgresql+asyncpg://"
            )
        storage_scheme = urlsplit(self.resolved_storage_url).scheme
        if storage_scheme not in {"file", "s3"}:
            raise ValueError(
                f"IAP_STORAGE_URL scheme {storage_scheme!r} is not supported: use file:// or s3://"
            )
        if self.broker_url and urlsplit(self.broker_url).scheme not in {
            "amqp",
            "amqps",
            "redis",
            "rediss",
        }:
            raise ValueError(
                "IAP_BROKER_URL must start with amqp://, amqps://, redis:// or rediss://"
            )
        if self.redis_url and urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("IAP_REDIS_URL must start with redis://, rediss:// or unix://")
        return self

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'iap.db'}"
        # Accept the plain URLs people copy from their provider; the async driver is implied.
        if url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgres://")
        elif url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        elif url.startswith("sqlite://"):
            url = "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        return url

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.data_dir.resolve() / "blobs").as_uri()

    @property
    def disabled_analyser_names(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.disabled_analysers.split(",") if n.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @cached_property
    def signing_key(self) -> str:
        """The JWT key: configured, or (embedded only) generated once and kept in the data dir."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 32:
                raise ConfigError("IAP_SECRET_KEY must be at least 32 characters long")
            return value
        if not self.is_sqlite:
            raise ConfigError(
                "IAP_SECRET_KEY is required outside the embedded (SQLite) mode; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return _load_or_create_key(self.data_dir / "secret_key")


def _load_or_create_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once agree on the first key written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def load_settings(**overrides: object) -> Settings:
    """Load and validate settings, turning any problem into a one-line ``ConfigError``."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        field = f"IAP_{where.upper()}: " if where else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid configuration: {field}{message}") from None
    _ = settings.signing_key  # fail now, not at the first login
    return settings
