"""The audit spool: audit entries that could not be written to the database wait in local files until it is back.

While the database does not answer, a request still leaves its audit entry: the entry is appended to a spool file
under `MX_AUDIT_SPOOL_DIR` (default `MX_DATA_DIR/audit-spool`) and fsynced before the response is sent. Each process
appends to its own file (`<host>-<pid>-<random>.jsonl`), one JSON line per entry, with a unique id and a checksum.

A background loop in every process (app.main) replays the spool when the database answers: it claims each file
under an exclusive lock by renaming it (`….replaying`; a writer that finds its file renamed starts a new one), writes
the claimed entries into the audit log in arrival order in one transaction, then deletes the claimed files. Each
entry's id goes into `audit_spool_replays` in the same transaction (`ON CONFLICT DO NOTHING`), so an entry is
written exactly once, even when a process dies between the commit and the delete, or two processes replay the same
file. A file with a damaged line is set aside (`….corrupt`) for the operator and makes `verify-audit` fail.
"""

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.infra.config import settings
from app.models.base import utcnow
from app.models.spool import AuditSpoolReplay

log = logging.getLogger("app.audit.spool")

SUFFIX = ".jsonl"
CLAIMED = ".replaying"
CORRUPT = ".corrupt"
_REPLAY_LOCK = 0x4D58_5350_4F4F_4C31  # advisory lock id: one replayer at a time across processes


class Append(Protocol):
    """How a replayed entry is written: the audit log's own append (app.services.audit)."""

    async def __call__(self, *, session: AsyncSession, **fields: Any) -> None: ...


class SpoolError(Exception):
    """The entry could not be made durable here either."""


class SpoolCorrupt(ValueError):
    pass


def _checksum(spool_id: str, entry: dict) -> str:
    canonical = json.dumps({"id": spool_id, "entry": entry}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode(spool_id: str, fields: dict[str, Any]) -> bytes:
    entry = {k: _jsonable(v) for k, v in fields.items()}
    record = {"id": spool_id, "entry": entry, "sha256": _checksum(spool_id, entry)}
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode(line: bytes) -> tuple[str, dict[str, Any]]:
    """One spooled line → (id, the audit entry's fields); SpoolCorrupt when it is not what `encode` wrote."""
    try:
        record = json.loads(line)
        spool_id, entry = record["id"], record["entry"]
        if not isinstance(spool_id, str) or len(spool_id) != 32 or not isinstance(entry, dict):
            raise ValueError("malformed record")
        if record.get("sha256") != _checksum(spool_id, entry):
            raise ValueError("checksum mismatch")
        fields = dict(entry)
        fields["occurred_at"] = datetime.fromisoformat(entry["occurred_at"])
        if fields.get("actor_account"):
            fields["actor_account"] = uuid.UUID(fields["actor_account"])
        return spool_id, fields
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolCorrupt(str(exc)) from None


@dataclass
class FileReport:
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    corrupt: str | None = None
    torn_tail: bool = False


def read_file(path: Path) -> FileReport:
    """Every entry of one spool file. A last line without its newline is a write a crash interrupted before its
    fsync (so before any response): it is reported as torn and skipped. Any other bad line makes the file corrupt."""
    report = FileReport()
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1]:
        report.torn_tail = True
    for number, line in enumerate(lines[:-1], start=1):
        try:
            report.entries.append(decode(line))
        except SpoolCorrupt as exc:
            report.corrupt = f"{path.name}: line {number}: {exc}"
            break
    return report


def _reason(exc: OSError) -> str:
    return "audit_spool_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "audit_spool_unwritable"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditSpool:
    """This process's spool writer, the replayer and the health probe, over one directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def directory(self) -> Path:
        return self._directory or settings.spool_dir

    def _path(self) -> Path:
        if os.getpid() != self._pid:  # a forked worker: a file of its own
            self._pid = os.getpid()
            self._name = f"{socket.gethostname()}-{self._pid}-{secrets.token_hex(4)}{SUFFIX}"
        return self.directory / self._name

    # ---- writing ------------------------------------------------------------------------------------------

    async def append(self, fields: dict[str, Any]) -> str:
        """Make one audit entry durable here (fsynced when this returns); its spool id. SpoolError otherwise."""
        spool_id = uuid.uuid4().hex
        fields = {"occurred_at": utcnow(), **fields}
        await asyncio.to_thread(self._append_sync, encode(spool_id, fields))
        return spool_id

    def _append_sync(self, data: bytes) -> None:
        with self._lock:
            try:
                self._write_durably(data)
            except OSError as exc:
                self.last_error = _reason(exc)
                log.error("could not spool an audit entry (%s): %s", self.last_error, exc)
                raise SpoolError(str(exc)) from exc
            self.last_error = None

    def _write_durably(self, data: bytes) -> None:
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        path = self._path()
        for _ in range(10):
            created = not path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    continue  # a replayer claimed (renamed) this file between open and lock: start a new one
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):  # no torn line for the next entry to follow
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)  # releases the lock
            if created:
                _fsync_dir(directory)
            return
        raise OSError(errno.EAGAIN, "the spool file kept being claimed")

    # ---- health -------------------------------------------------------------------------------------------

    async def problem(self) -> str | None:
        """None when an entry could be spooled now; else `audit_spool_full` or `audit_spool_unwritable`."""
        return await asyncio.to_thread(self._problem_sync)

    def _problem_sync(self) -> str | None:
        directory = self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable", str(directory))
            if shutil.disk_usage(directory).free < settings.audit_spool_min_free_bytes:
                found = "audit_spool_full"
            elif self.last_error:
                # The last append failed: try again with a probe file before calling it healthy.
                probe = directory / f".probe-{self._name}"
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, b"probe\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                    probe.unlink(missing_ok=True)
                found = None
            else:
                found = None
        except OSError as exc:
            found = _reason(exc)
        if found != self.last_error:
            if found:
                log.error("the audit spool %s cannot take entries: %s", directory, found)
            else:
                log.warning("the audit spool %s takes entries again", directory)
        self.last_error = found
        return found

    # ---- reading and replaying ----------------------------------------------------------------------------

    def _files(self, suffix: str) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(suffix))
        except FileNotFoundError:
            return []

    def _claim_sync(self) -> list[Path]:
        """Rename every non-empty spool file (under its lock, so no entry is half-written into it) for replay; with
        the files a replayer claimed earlier and did not finish."""
        for path in self._files(SUFFIX):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino or os.fstat(fd).st_size == 0:
                        continue
                except FileNotFoundError:
                    continue
                os.rename(path, path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}{CLAIMED}"))
            finally:
                os.close(fd)
        return self._files(CLAIMED)

    def status(self) -> dict[str, Any]:
        """What waits in the spool (for verify-audit): entries not yet replayed, and damaged files."""
        pending, files, corrupt, torn = 0, 0, [], 0
        for path in self._files(SUFFIX) + self._files(CLAIMED) + self._files(CORRUPT):
            try:
                report = read_file(path)
            except FileNotFoundError:
                continue  # replayed meanwhile
            files += 1
            pending += len(report.entries)
            torn += report.torn_tail
            if report.corrupt or path.name.endswith(CORRUPT):
                corrupt.append(report.corrupt or f"{path.name}: set aside as corrupt")
        return {"directory": str(self.directory), "files": files, "pending": pending, "torn": torn, "corrupt": corrupt}

    async def replay(self, sessions: async_sessionmaker, append: Append) -> int:
        """Write every spooled entry into the audit log with `append`, oldest first, exactly once; returns how many
        were new."""
        claimed = await asyncio.to_thread(self._claim_sync)
        if not claimed:
            return 0
        records: list[tuple[datetime, str, int, str, dict]] = []
        done: list[Path] = []
        for path in claimed:
            try:
                report = await asyncio.to_thread(read_file, path)
            except FileNotFoundError:
                continue  # another process replayed it meanwhile
            if report.corrupt:
                log.error("audit spool file set aside, it is damaged: %s", report.corrupt)
                await asyncio.to_thread(os.rename, path, path.with_name(path.name + CORRUPT))
                continue
            if report.torn_tail:
                log.warning("audit spool %s: an interrupted last line (never acknowledged) skipped", path.name)
            for number, (spool_id, fields) in enumerate(report.entries):
                records.append((fields["occurred_at"], path.name, number, spool_id, fields))
            done.append(path)
        records.sort(key=lambda r: r[:3])
        written = 0
        if records:
            async with sessions() as session:
                written = await _insert(session, [(r[3], r[4]) for r in records], append)
                await session.commit()
        for path in done:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)
        if done:
            await asyncio.to_thread(_fsync_dir, self.directory)
        if written:
            log.warning("replayed %d audit entries from the spool", written)
        return written


# What an entry spooled by an older or trimmed-down writer may lack.
_ABSENT: dict[str, Any] = {
    **{name: None for name in ("request_id", "actor_account", "actor_login", "actor_org", "token_jti")},
    **{name: None for name in ("resource_type", "resource_id", "member_ref", "counterpart_org", "client_address")},
    "details": {},
}


async def _insert(session: AsyncSession, records: list[tuple[str, dict[str, Any]]], append: Append) -> int:
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_REPLAY_LOCK)))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now, written = utcnow(), 0
    for spool_id, fields in records:
        stmt = (
            insert(AuditSpoolReplay.__table__)
            .values(spool_id=spool_id, replayed_at=now)
            .on_conflict_do_nothing()
            .returning(AuditSpoolReplay.__table__.c.spool_id)
        )
        if (await session.execute(stmt)).first() is None:
            continue  # written by an earlier replay that did not get to delete its file
        await append(session=session, **{**_ABSENT, **fields})
        written += 1
    return written


spool = AuditSpool()
