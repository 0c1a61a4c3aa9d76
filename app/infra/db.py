"""The engine and its session factory, with client-side deadlines.

Every wait on the database is bounded on the client side (README, "Configuration"): opening a connection
(`MX_DB_CONNECT_TIMEOUT_SECONDS`), waiting for a pooled one (`MX_DB_POOL_TIMEOUT_SECONDS`) and each statement,
BEGIN and COMMIT (`MX_DB_COMMAND_TIMEOUT_SECONDS`: asyncpg's `command_timeout`; on SQLite the time a writer waits
for the write lock). A database that accepts connections but never answers is thus cut off by the service itself;
the error handlers turn what is raised into 503 `database_unavailable`. A connection whose statement ran out of time
is in an unknown state: it is invalidated (closed, not returned to the pool), so it cannot poison later requests.
"""

import asyncio
import collections
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.infra.config import Settings, settings

# The session and session-factory types the layers above name in their signatures. Services and routers hold a
# session (they decide where a transaction ends: flush, commit, rollback) but never run a statement on it: SQL is
# the repositories' (app/repositories/), and services and routers do not import SQLAlchemy (`lint-imports`).
Session = AsyncSession
SessionFactory = async_sessionmaker[AsyncSession]

# Execution options of a connection that only reads (SQLite: no BEGIN IMMEDIATE, so no write lock; repositories'
# plain reads before a request writes anything).
_READER_OPTION = "mx_reader"
READER = {_READER_OPTION: True}


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


class _WriterQueue:
    """First come, first served: the writers of this process wait here, each in its connection's own thread, for
    their turn to take SQLite's single write lock. SQLite's busy handler would make them poll it instead, sleeping
    up to 100 ms between tries, so that under load a waiter often missed its turn and a few waited for seconds.
    Between processes (uvicorn workers) the turn is a file lock beside the database (`<file>-writer.lock`), tried
    every millisecond: the writer of another worker gets the lock within a millisecond of its release instead of
    after one of SQLite's sleeps."""

    def __init__(self, path: str | None = None) -> None:
        self._cond = threading.Condition()
        self._waiting: collections.deque[object] = collections.deque()
        self._held = False
        self._lock_path = f"{path}-writer.lock" if path and path != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._held or self._waiting:
                me = object()
                self._waiting.append(me)
                while self._held or self._waiting[0] is not me:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._waiting.remove(me)
                        self._cond.notify_all()
                        return False
                    self._cond.wait(remaining)
                self._waiting.popleft()
            self._held = True
        if self._between_processes(deadline):
            return True
        self._release_turn()
        return False

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._release_turn()

    def _release_turn(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def _between_processes(self, deadline: float) -> bool:
        """The other workers' turn: the file lock, until the deadline (this process's turn is held)."""
        if self._lock_path is None:
            return True
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own (a shared one locks nothing)
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.001)


_WRITERS: dict[str, _WriterQueue] = {}  # one queue per database file in this process


class _QueuedCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        if sql != "BEGIN IMMEDIATE":
            return super().execute(sql, parameters)
        conn: _QueuedConnection = self.connection
        conn.take_turn()
        try:
            return super().execute(sql, parameters)
        except BaseException:
            conn.end_turn()
            raise


class _QueuedConnection(sqlite3.Connection):
    """A connection whose BEGIN IMMEDIATE first waits for its turn in this process's writer queue, then for SQLite's
    lock, both within one deadline (then "database is locked", as SQLite says when its own wait runs out); COMMIT,
    ROLLBACK or closing ends the turn. Only the turn-holders of each process then meet at SQLite's lock (one per
    uvicorn worker)."""

    wait_seconds = 30.0
    writers = _WriterQueue()
    _turn = False

    def cursor(self, factory=_QueuedCursor):
        return super().cursor(factory)

    def take_turn(self) -> None:
        if self._turn:
            return
        deadline = time.monotonic() + self.wait_seconds
        if not self.writers.acquire(self.wait_seconds):
            raise sqlite3.OperationalError("database is locked")
        self._turn = True
        # One deadline for both waits: SQLite's own wait (for a writer of another process) gets what is left.
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            self.end_turn()
            raise sqlite3.OperationalError("database is locked")
        super().execute(f"PRAGMA busy_timeout={left_ms}")

    def end_turn(self) -> None:
        if self._turn:
            self._turn = False
            self.writers.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_turn()


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
            connect_args={"timeout": cfg.db_command_timeout_seconds or 30, "factory": _queued(cfg)},
        )
        busy_ms = int((cfg.db_command_timeout_seconds or 30) * 1000)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            # Let SQLAlchemy's "begin" event below issue BEGIN itself (the driver's own would be deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin_immediate(conn):  # pragma: no cover
            # Take the write lock at BEGIN so concurrent writers queue instead of failing to upgrade; a reader
            # (READER) takes none and reads in autocommit.
            if not conn.get_execution_options().get(_READER_OPTION):
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
        connect_args={
            "server_settings": server_settings,
            "timeout": cfg.db_connect_timeout_seconds,
            "command_timeout": cfg.db_command_timeout_seconds or None,
        },
    )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _timed_out_is_a_disconnect(context):  # pragma: no cover - exercised by the fault tests
        # A statement cut off by its deadline leaves the connection mid-protocol (asyncpg cancels the query in the
        # background): treat it as a broken connection, so it is closed instead of being reused.
        if _timed_out(context.original_exception):
            context.is_disconnect = True
            # Close it at once: SQLAlchemy would first try a graceful close, which waits on a silent server.
            with contextlib.suppress(Exception):
                context.connection.connection.dbapi_connection.driver_connection.terminate()

    @event.listens_for(engine.sync_engine, "checkout")
    def _drop_closed(dbapi_conn, _record, _proxy):  # pragma: no cover - exercised by every PostgreSQL request
        # A pessimistic check without a round trip (pool_pre_ping costs three on asyncpg): a connection the
        # server or the network closed is already marked closed by the driver; the pool then opens a new one.
        # A connection that breaks mid-request invalidates the whole pool (SQLAlchemy's disconnect handling).
        if dbapi_conn.driver_connection.is_closed():
            raise DisconnectionError("the database closed this connection")

    return engine


def _queued(cfg: Settings) -> type[_QueuedConnection]:
    """The connection class for this configuration's database file: its writer queue, its deadline for a turn."""
    url = cfg.resolved_database_url
    path = url.split(":///", 1)[-1]
    writers = _WRITERS.setdefault(path, _WriterQueue(path))
    wait = cfg.db_command_timeout_seconds or 30
    return type("QueuedConnection", (_QueuedConnection,), {"wait_seconds": wait, "writers": writers})


def _timed_out(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, TimeoutError) or "operation is cancelling" in str(exc):
            return True
        exc = exc.__cause__
    return False


def unreachable(exc: BaseException) -> bool:
    """The database did not answer (a deadline, a refused or broken connection), somewhere in this error's causes:
    whatever it surfaced as, the request gets 503 database_unavailable, not 500."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 20:
        if isinstance(current, OSError | OperationalError | SQLAlchemyTimeoutError | DisconnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, PendingRollbackError):  # the connection was invalidated mid-transaction
            return True
        if _timed_out(current) or "connection is closed" in str(current) or "another operation" in str(current):
            return True
        current, seen = current.__cause__, seen + 1
    return False


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

    async def dedicated_connection(self, application_name: str) -> asyncpg.Connection | None:
        """A PostgreSQL connection of its own, outside the pool (for LISTEN: a pooled connection goes back to the
        pool after each request), with the pool's deadlines and settings; None on SQLite."""
        url = self.engine.url
        if url.get_backend_name() != "postgresql":
            return None
        server_settings = {"application_name": application_name[:63], "timezone": "UTC"}
        return await asyncpg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            timeout=settings.db_connect_timeout_seconds,
            command_timeout=settings.db_command_timeout_seconds or None,
            server_settings=server_settings,
        )

    async def ping(self) -> bool:
        """True when the database answers within MX_READY_TIMEOUT_SECONDS. A second try: the first
        may meet a pooled connection the server has just closed, whose error makes the pool drop every connection
        opened before it."""
        try:
            async with asyncio.timeout(settings.ready_timeout_seconds):
                for _ in range(2):
                    try:
                        async with self.engine.connect() as conn:
                            await conn.execute(text("SELECT 1"))
                        return True
                    except (OSError, OperationalError, DBAPIError, SQLAlchemyTimeoutError):
                        continue
        except TimeoutError:  # the deadline (asyncio's), not the pool's: the database did not answer in time
            pass
        return False


db = Database()
