"""The engine and its session factory."""

from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.config import Settings, settings


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(cfg: Settings = settings) -> AsyncEngine:
    """An engine with an explicitly sized pool (no connection churn under load)."""
    url = cfg.resolved_database_url
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        engine = create_async_engine(
            url,
            pool_size=cfg.db_pool_size,
            max_overflow=cfg.db_max_overflow,
            pool_timeout=cfg.db_pool_timeout_seconds,
            connect_args={"timeout": 30},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            # Let SQLAlchemy's "begin" event below issue BEGIN itself (the driver's own would be deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin_immediate(conn):  # pragma: no cover
            # Take the write lock at BEGIN so concurrent writers queue instead of failing to upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    server_settings = {"application_name": "member-exchange", "timezone": "UTC"}
    if cfg.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(cfg.db_statement_timeout_ms)
    engine = create_async_engine(
        url,
        pool_size=cfg.db_pool_size,
        max_overflow=cfg.db_max_overflow,
        pool_timeout=cfg.db_pool_timeout_seconds,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings, "timeout": 5},
    )

    @event.listens_for(engine.sync_engine, "checkout")
    def _drop_closed(dbapi_conn, _record, _proxy):  # pragma: no cover - exercised by every PostgreSQL request
        # A pessimistic check without a round trip (pool_pre_ping costs three on asyncpg): a connection the
        # server or the network closed is already marked closed by the driver; the pool then opens a new one.
        # A connection that breaks mid-request invalidates the whole pool (SQLAlchemy's disconnect handling).
        if dbapi_conn.driver_connection.is_closed():
            raise DisconnectionError("the database closed this connection")

    return engine


class Database:
    """Holds the engine so tests and fault drills can swap it at run time."""

    def __init__(self, cfg: Settings = settings) -> None:
        self.engine = make_engine(cfg)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    def replace(self, engine: AsyncEngine) -> AsyncEngine:
        """Use another engine; returns the old one."""
        old, self.engine = self.engine, engine
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        return old

    async def ping(self) -> bool:
        """True when the database answers. A second try: the first may meet a pooled connection the server has
        just closed, whose error makes the pool drop every connection opened before it."""
        for _ in range(2):
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return True
            except (OSError, OperationalError, DBAPIError, TimeoutError):
                continue
        return False


db = Database()
