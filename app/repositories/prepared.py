"""Statements on the hot paths: built once, run without the ORM.

Profiling the service under load (see the README's benchmark section) showed SQLAlchemy spending 200–400 µs of
CPU per statement on building execution contexts and ORM results: on the hot paths (every authenticated request,
its audit entry, push, pull, acknowledge, read) that was most of each request. These statements are still
SQLAlchemy expressions, so each rule is written once. A `Prepared` statement compiles itself once (SQLAlchemy's
public compiler API: the SQL text, the positional parameters, each parameter type's bind processor); on PostgreSQL
it runs on the session's asyncpg connection (`driver_connection`). Every round trip counts there, so a request
opens a transaction only when it needs one:
- a plain read (a SELECT that locks nothing) sent before the request has written anything runs on its own, outside
  any transaction (PostgreSQL runs it in a transaction of its own, with the same snapshot a READ COMMITTED
  transaction would give that statement): no BEGIN;
- a statement that writes or locks (FOR UPDATE, an advisory lock) runs in the session's transaction, begun by its
  first such statement through SQLAlchemy (`exec_driver_sql`), and so does every statement after it; they go
  straight to the driver;
- a request's last writes (its audit entry, its idempotency record, the notice it creates: `later`) are sent
  together as one statement just before the commit; when nothing began a transaction before them, that one
  statement *is* the transaction (atomic on its own): no BEGIN, no COMMIT.
So a pull is its page and one closing statement; an acknowledgement the notice and one closing statement.
On SQLite (in-process, no round trips to save) statements run through the session, in its transaction, as usual;
what counts there is how long a request holds the single write lock, which BEGIN IMMEDIATE takes: a plain read
before any write runs on a connection of its own, outside the lock (in WAL mode readers never wait for the writer),
so a push holds the lock only for its closing writes. Rows come back as mappings (`row["column"]`) holding the same
Python types on both databases. Only repositories use this module.
"""

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncpg
from sqlalchemy import Executable, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from app.infra.db import READER

Row = Mapping[str, Any]
_POSTGRESQL = postgresql.dialect()


class Prepared:
    """One statement, compiled once per database. `postgresql` may give a variant for PostgreSQL (say, `= ANY`
    of an array where SQLite needs an expanding IN); `column_keys` names the columns an INSERT sets."""

    __slots__ = ("_column_keys", "_compiled", "_pg_stmt", "_plain_read", "stmt")

    def __init__(
        self, stmt: Executable, *, postgresql: Executable | None = None, column_keys: Iterable[str] | None = None
    ) -> None:
        self.stmt = stmt
        self._pg_stmt = postgresql if postgresql is not None else stmt
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: tuple[str, tuple] | None = None
        self._plain_read: bool | None = None

    def for_postgresql(self, dialect) -> tuple[str, tuple]:
        """The SQL text and, per positional parameter, its name, bind processor and default (public compiler API)."""
        if self._compiled is None:
            compiled = self._pg_stmt.compile(dialect=dialect, column_keys=self._column_keys)
            defaults = compiled.params
            binds = tuple(
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect), defaults.get(name))
                for name in compiled.positiontup or ()
            )
            self._compiled = (str(compiled), binds)
        return self._compiled

    def is_plain_read(self) -> bool:
        """A SELECT that locks nothing (judged by its PostgreSQL text, which keeps FOR UPDATE where SQLite's drops
        it)."""
        if self._plain_read is None:
            self._plain_read = _is_plain_read(str(self._pg_stmt.compile(dialect=_POSTGRESQL)))
        return self._plain_read

    async def _run(self, session: AsyncSession, params: Mapping[str, Any] | None, method: str) -> Any:
        params = params or {}
        if session.bind.dialect.name != "postgresql":
            if self.is_plain_read() and not session.in_transaction():
                # Nothing written yet: read outside the write lock (WAL readers never wait for the writer).
                async with session.bind.connect() as reader:
                    await reader.execution_options(**READER)
                    return _shaped(await reader.execute(self.stmt, dict(params)), method)
            return _shaped(await session.execute(self.stmt, dict(params)), method)
        conn, driver = await _connection(session)
        sql, binds = self.for_postgresql(conn.dialect)
        args = _arguments(binds, params)
        if driver.is_in_transaction():
            return await _direct(driver, method, sql, args)
        if self.is_plain_read():  # nothing written yet: no transaction needed to read
            return await _direct(driver, method, sql, args)
        return _shaped(await conn.exec_driver_sql(sql, tuple(args)), method)  # begins the transaction

    async def fetch(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> list[Row]:
        return await self._run(session, params, "fetch")

    async def fetchrow(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> Row | None:
        return await self._run(session, params, "fetchrow")

    async def execute(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> None:
        await self._run(session, params, "execute")


async def run_alone(session: AsyncSession, script: str) -> str:
    """PostgreSQL: a script of several statements without parameters, sent in one round trip (the simple query
    protocol), which the server runs as one transaction of its own, each statement with its own snapshot; the
    session must not be in a transaction. The status of its last statement (say, "UPDATE 12")."""
    _, driver = await _connection(session)
    if driver.is_in_transaction():
        raise RuntimeError("run_alone needs a session outside any transaction")
    return await _direct(driver, "execute", script, [])


def shaped(build: Callable[..., Executable | Prepared]) -> Callable[..., Prepared]:
    """A family of statements whose shape depends on a few hashable arguments (the caller's scope, which filters a
    request gives): each shape is built and compiled once. The cache key is the builder and its arguments, so a
    statement can depend on nothing its key does not name."""

    @functools.cache
    def statement(*shape: Any) -> Prepared:
        built = build(*shape)
        return built if isinstance(built, Prepared) else Prepared(built)

    return functools.wraps(build)(statement)


def _arguments(binds: tuple, params: Mapping[str, Any]) -> list[Any]:
    args = []
    for name, process, default in binds:
        value = params[name] if name in params else default
        args.append(process(value) if process is not None and value is not None else value)
    return args


_LOCKING = re.compile(r"\bFOR (UPDATE|SHARE|NO KEY UPDATE|KEY SHARE)\b|advisory|nextval|setval", re.IGNORECASE)


def _is_plain_read(sql: str) -> bool:
    """A statement that only reads and locks nothing: it may run outside the request's transaction."""
    return sql.lstrip().upper().startswith("SELECT") and _LOCKING.search(sql) is None


_CONNECTION = "mx_prepared_connection"  # session.info: the session's connection and its asyncpg connection


async def _connection(session: AsyncSession) -> tuple[AsyncConnection, asyncpg.Connection]:
    """The session's connection and the asyncpg connection under it, looked up once per transaction of the session
    (each lookup is a hop through SQLAlchemy's greenlet, on every statement of the hot paths otherwise)."""
    found = session.info.get(_CONNECTION)
    if found is None:
        conn = await session.connection()
        found = session.info[_CONNECTION] = (conn, (await conn.get_raw_connection()).driver_connection)
    return found


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, _transaction) -> None:
    session.info.pop(_CONNECTION, None)


def _shaped(result: Any, method: str) -> Any:
    if method == "execute":
        return None
    rows = result.mappings()
    return rows.first() if method == "fetchrow" else rows.all()


async def _direct(driver: asyncpg.Connection, method: str, sql: str, args: list[Any]) -> Any:
    """One statement straight on the asyncpg connection: in the transaction it is in, or else on its own."""
    try:
        return await getattr(driver, method)(sql, *args)
    except Exception as exc:
        if isinstance(exc, TimeoutError):
            # Cut off by its deadline (app.infra.db): close the connection now rather than wait for the cancel.
            driver.terminate()
        raise _translated(sql, exc) from exc


# ---- writes that close a request ------------------------------------------------------------------------------
# The rows a request writes last (its audit entry, its idempotency record, the notice it creates and what that
# carries) are held back and sent together just before the commit: on PostgreSQL as one statement (data-modifying
# WITH clauses), saving a round trip each, and, when the request wrote nothing before, its BEGIN and COMMIT too.
# Only a session whose commit point sends them (the request's: app.http.deps.get_session, which marks it with
# `closes_with_last_writes`) holds writes back; any other session writes them at once.

_DEFERRED = "deferred_writes"
_CLOSES = "closes_with_last_writes"
_PLACEHOLDER = re.compile(r"\$(\d+)")
_COMBINED: dict[tuple[Prepared, ...], str] = {}  # keyed by the statements themselves
_MAX_COMBINED = 64  # statements in one combined statement (each has fewer than 60 parameters)


def closes_with_last_writes(session: AsyncSession) -> None:
    """This session's commit point calls `flush_deferred` before it commits."""
    session.info[_CLOSES] = True


async def later(session: AsyncSession, statement: Prepared, params: Mapping[str, Any]) -> None:
    """Write this row with the request's last statement (nothing in the request may read it back before), or now
    in a session without such a statement."""
    if session.info.get(_CLOSES):
        session.info.setdefault(_DEFERRED, []).append((statement, params))
    else:
        await statement.execute(session, params)


async def flush_deferred(session: AsyncSession) -> None:
    """Send the held-back writes: called by the request's commit point, before COMMIT."""
    pending = session.info.pop(_DEFERRED, None)
    if not pending:
        return
    await session.flush()  # rows the held-back ones may refer to (say, a new document) are written first
    if session.bind.dialect.name != "postgresql" or len(pending) > _MAX_COMBINED:
        # SQLite; or a request writing many rows (reminders for a whole round), more than one statement may carry
        # (PostgreSQL takes at most 32,767 parameters): one statement each, in the request's transaction, which the
        # first of them begins.
        for statement, params in pending:
            await statement.execute(session, params)
        return
    conn, driver = await _connection(session)
    compiled = [statement.for_postgresql(conn.dialect) for statement, _ in pending]
    if len(pending) == 1:
        sql = compiled[0][0]
    else:
        key = tuple(statement for statement, _ in pending)
        sql = _COMBINED.get(key)
        if sql is None:
            parts, offset = [], 0
            for i, (text, binds) in enumerate(compiled):
                renumbered = _PLACEHOLDER.sub(lambda m, o=offset: f"${int(m.group(1)) + o}", text)
                parts.append(f"w{i} AS ({renumbered})")
                offset += len(binds)
            sql = _COMBINED[key] = "WITH " + ", ".join(parts) + " SELECT 1"
    args = [arg for (_, binds), (_, params) in zip(compiled, pending, strict=True) for arg in _arguments(binds, params)]
    # In the request's transaction if it began one; otherwise this one statement is its whole transaction.
    await _direct(driver, "execute", sql, args)


@event.listens_for(Session, "before_commit")
def _nothing_held_back(session: Session) -> None:
    if session.info.get(_DEFERRED):
        raise RuntimeError("writes held back for the request's last statement were never sent (flush_deferred)")


def _translated(sql: str, exc: Exception) -> Exception:
    """asyncpg's errors as SQLAlchemy's, so that the service's handlers treat them alike (503 when the database
    is gone, 409 where a caller expects a constraint, 500 otherwise)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, None, exc)
    if isinstance(
        exc, OSError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError | asyncpg.OperatorInterventionError
    ):
        return OperationalError(sql, None, exc)
    if isinstance(exc, asyncpg.PostgresError):
        return DBAPIError(sql, None, exc)
    return exc
