"""Settings: one object, read from environment variables (see README, "Configuration")."""

from functools import cached_property
from ipaddress import ip_network
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_KEY_PASSPHRASE = "dev-only-insecure-key-passphrase"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MX_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("MX_DATABASE_URL", "DATABASE_URL"),
        description="postgresql://… or sqlite:///path; empty means SQLite in data_dir",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    # Client-side deadlines: a database that accepts connections but never answers is cut off by the service
    # itself, so a request gets 503 database_unavailable within about 5 s instead of hanging.
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0, description="opening one connection")
    db_pool_timeout_seconds: float = Field(default=3.0, gt=0, description="waiting for a free pooled connection")
    db_command_timeout_seconds: float = Field(
        default=4.0, ge=0, description="one statement, BEGIN or COMMIT (SQLite: waiting for the write lock); 0: none"
    )
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    ready_timeout_seconds: float = Field(default=1.5, gt=0, description="/readyz gives up on the database after this")

    # Private signing keys are stored in the database, encrypted with this passphrase.
    key_passphrase: str = DEV_KEY_PASSPHRASE
    token_issuer: str = "member-exchange"
    token_audience: str = "member-exchange-api"
    token_ttl_seconds: int = Field(default=900, ge=60, le=900)
    token_leeway_seconds: int = Field(default=30, ge=0, le=120)
    token_max_length: int = Field(default=4096, ge=512, le=16384)

    # Argon2id cost (argon2-cffi's RFC 9106 low-memory profile by default); tests lower it.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)
    password_hash_concurrency: int = Field(default=2, ge=1, le=64, description="Argon2 computations at once")

    # Failed logins: per (login, client address); per client address; per login from addresses it never used
    # successfully before (so a stranger can slow guessing but never lock the owner out of its usual address).
    login_max_failures_per_username: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_max_failures_per_login: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=900, ge=10)
    login_usual_address_days: int = Field(default=90, ge=1, description="how long a successful address stays usual")
    login_max_tokens_per_account: int = Field(default=30, ge=1, description="tokens issued per account per window")

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, description="a stalled request body gets a 408")
    max_document_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="largest document upload")
    storage_dir: Path | None = Field(default=None, description="document storage; default data_dir/blobs")
    page_size_default: int = Field(default=50, ge=1, le=500)
    page_size_max: int = Field(default=200, ge=1, le=1000)

    audit_enabled: bool = Field(default=True, description="off only to measure its cost in benchmarks")
    audit_seal_interval_seconds: float = Field(default=1.0, gt=0)
    audit_checkpoint_interval_seconds: float = Field(default=300.0, gt=0)
    audit_spool_dir: Path | None = Field(default=None, description="audit entries waiting for the database")
    audit_spool_replay_seconds: float = Field(default=1.0, gt=0)
    audit_spool_min_free_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="/readyz 503 below this")
    # How long after its request began an audit entry may still commit and be chained (see README, "The audit
    # log"): an unchained entry dated earlier than this is reported as inserted.
    audit_late_commit_seconds: float = Field(default=600.0, gt=0)
    # How often each process's sequencer looks for notices without a position even when nothing woke it.
    sequencer_interval_seconds: float = Field(default=1.0, gt=0)

    # The caller's account, cached per process on PostgreSQL while a LISTEN connection hears every change to
    # accounts and committees (README, "Operating it"); SQLite never caches.
    account_cache_enabled: bool = Field(default=True, description="cache callers' accounts (PostgreSQL only)")
    account_cache_size: int = Field(default=10_000, ge=1, description="accounts cached per process at most")
    account_cache_ttl_seconds: float = Field(default=300.0, gt=0, description="an entry is read again after this")
    account_cache_ping_seconds: float = Field(
        default=5.0, gt=0, description="the listener's round trip that finds a silently broken connection"
    )
    account_cache_settle_seconds: float = Field(
        default=1.0, ge=0, description="an account change answers once this process heard of it, waiting at most this"
    )

    webhook_worker: bool = Field(default=True, description="run the push delivery worker in this process")
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    # Seconds before each attempt after the first; about three days in all, each with ±20 % jitter.
    webhook_retry_schedule: list[float] = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 72000]
    webhook_secret_grace_seconds: int = Field(default=86_400, ge=0)
    webhook_allowed_networks: str = Field(
        default="", description="comma-separated networks subscription URLs may resolve to (SSRF guard)"
    )

    reminder_interval_seconds: int = Field(default=7 * 86_400, ge=60, description="at most one reminder per request")
    reminder_check_seconds: float = Field(default=3600, gt=0)

    metrics_token: str = Field(
        default="", description="bearer token for GET /metrics; required in production (without it: 404)"
    )
    metrics_dir: Path | None = Field(default=None, description="prometheus-client's multiprocess files")
    metrics_cache_seconds: float = Field(default=15.0, ge=0, description="database figures reused this long")

    housekeeping_enabled: bool = Field(default=True, description="run the housekeeping job in this process")
    housekeeping_interval_seconds: float = Field(default=3600.0, gt=0)
    housekeeping_batch_size: int = Field(default=1000, ge=1, le=50_000, description="rows per table per transaction")
    housekeeping_max_batches: int = Field(default=50, ge=1, description="transactions per run at most")
    delivery_retention_days: float = Field(default=30.0, gt=0, description="finished webhook deliveries kept")

    docs_enabled: bool = Field(default=True, description="serve Swagger UI at /docs (Khối staff work there)")

    trusted_proxies: str = Field(default="", description="comma-separated addresses/networks of reverse proxies")
    log_level: str = "INFO"
    demo_accounts: bool = Field(default=False, description="create the documented demo accounts on start")

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> "Settings":
        if self.environment == "production":
            if self.key_passphrase == DEV_KEY_PASSPHRASE or len(self.key_passphrase) < 16:
                raise ValueError("MX_KEY_PASSPHRASE must be set to a real secret (16+ characters) in production")
            if self.demo_accounts:
                raise ValueError("MX_DEMO_ACCOUNTS must not be enabled in production")
        if self.metrics_token and len(self.metrics_token) < 24:
            raise ValueError("MX_METRICS_TOKEN must be at least 24 characters")
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL, with the driver filled in."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'member-exchange.db').as_posix()}"
        for prefix, driver in (
            ("postgresql+asyncpg://", None),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite+aiosqlite://", None),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(prefix):
                return url if driver is None else driver + url[len(prefix) :]
        raise ValueError("DATABASE_URL must be a postgresql:// or sqlite:// URL")

    @property
    def blob_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "blobs"

    @property
    def spool_dir(self) -> Path:
        return self.audit_spool_dir or self.data_dir / "audit-spool"

    @property
    def metrics_path(self) -> Path:
        return self.metrics_dir or self.data_dir / "metrics"

    @cached_property
    def webhook_networks(self) -> tuple:
        nets = self.webhook_allowed_networks or ("" if self.environment == "production" else "127.0.0.0/8,::1/128")
        return tuple(ip_network(p.strip(), strict=False) for p in nets.split(",") if p.strip())

    @cached_property
    def trusted_proxy_networks(self) -> tuple:
        return tuple(ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip())


settings = Settings()
