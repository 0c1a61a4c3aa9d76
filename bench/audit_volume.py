"""A long audit log, quickly: N entries and their chain links, written straight into the tables, then timed
`member-exchange verify-audit` while a probe checks that the service keeps answering.

The entries are hashed and chained exactly as the sealer does (`app.services.audit.entry_hash`/`link_hash`), after
the chain's current head, so the verification recomputes a valid chain of N more links. Their `occurred_at` lies a
month back (a long log is mostly old), outside the sealer's late-commit window.
"""

import asyncio
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import httpx

from app.services.audit import GENESIS, HASHED_FIELDS, entry_hash, link_hash
from bench.common import ROOT, client_token, percentile

_ENTRY_COLUMNS = list(HASHED_FIELDS)
_LINK_COLUMNS = ["position", "entry_seq", "entry_hash", "chain_hash", "sealed_at"]
ORGS = ["ba-dinh", "hoan-kiem", "dong-da", "cau-giay", "khoi-cqtp"]


def _batch(seq0: int, position: int, previous: str, count: int, sealed_at: datetime) -> tuple[list, list, str]:
    """`count` entries from `seq0`, chained from `previous` at `position`."""
    base = sealed_at - timedelta(days=30)
    account = uuid.UUID(int=0x6D78)
    entries, links = [], []
    for i in range(count):
        seq = seq0 + i
        org = ORGS[seq % len(ORGS)]
        entry = SimpleNamespace(
            seq=seq,
            occurred_at=base + timedelta(milliseconds=seq),
            request_id=f"{seq:032x}",
            actor_account=account,
            actor_login=f"client-{org}",
            actor_org=org,
            token_jti=f"jti-{seq % 997}",
            action="notice.read" if seq % 3 else "notice.pushed",
            resource_type="notice",
            resource_id=str(uuid.UUID(int=seq)),
            member_ref=f"{20000000 + seq % 9000}",
            counterpart_org="khoi-cqtp" if org != "khoi-cqtp" else "ba-dinh",
            outcome="allowed",
            http_status=200,
            client_address="127.0.0.1",
            details={"limit": 50, "ghi_chú": "dữ liệu nền"},
        )
        digest = entry_hash(entry)
        previous = link_hash(previous, digest)
        entries.append(tuple(getattr(entry, c) for c in _ENTRY_COLUMNS))
        links.append((position + i, seq, digest, previous, sealed_at))
    return entries, links, previous


async def load_audit_pg(url: str, count: int, chunk: int = 100_000) -> float:
    """COPY `count` chained entries into PostgreSQL; returns the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        head = await conn.fetchrow("SELECT position, chain_hash FROM audit_chain ORDER BY position DESC LIMIT 1")
        position, previous = (head["position"] + 1, head["chain_hash"]) if head else (0, GENESIS)
        seq0 = (await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_entries")) + 1_000_000
        sealed_at = datetime.now(UTC)
        await conn.set_type_codec(  # COPY is binary: jsonb's binary form is a version byte, then the text
            "jsonb",
            encoder=lambda v: b"\x01" + json.dumps(v).encode(),
            decoder=lambda b: json.loads(b[1:]),
            schema="pg_catalog",
            format="binary",
        )
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            entries, links, previous = await asyncio.to_thread(
                _batch, seq0 + start, position + start, previous, n, sealed_at
            )
            await conn.copy_records_to_table("audit_entries", records=entries, columns=_ENTRY_COLUMNS)
            await conn.copy_records_to_table("audit_chain", records=links, columns=_LINK_COLUMNS)
        # Entries the service writes next get seqs above the loaded ones.
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('audit_entries', 'seq'), (SELECT max(seq) FROM audit_entries))"
        )
        # A long log is mostly old: vacuumed and on disk long ago. Without this the timed verification would also
        # pay for the load itself (autovacuum of a million new rows, the checkpoint writing them out).
        await conn.execute("VACUUM (ANALYZE) audit_entries")
        await conn.execute("VACUUM (ANALYZE) audit_chain")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return time.perf_counter() - started


def load_audit_sqlite(path: str, count: int, chunk: int = 100_000) -> float:
    """The same rows into a SQLite file."""
    import sqlite3

    started = time.perf_counter()
    db = sqlite3.connect(path)
    try:
        head = db.execute("SELECT position, chain_hash FROM audit_chain ORDER BY position DESC LIMIT 1").fetchone()
        position, previous = (head[0] + 1, head[1]) if head else (0, GENESIS)
        seq0 = db.execute("SELECT coalesce(max(seq), 0) FROM audit_entries").fetchone()[0] + 1_000_000
        sealed_at = datetime.now(UTC)

        def plain(value):
            if isinstance(value, datetime):
                return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            if isinstance(value, uuid.UUID):
                return value.hex
            if isinstance(value, dict):
                return json.dumps(value)
            return value

        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            entries, links, previous = _batch(seq0 + start, position + start, previous, n, sealed_at)
            db.executemany(
                f"INSERT INTO audit_entries ({', '.join(_ENTRY_COLUMNS)}) VALUES ({', '.join('?' * 16)})",
                [tuple(plain(v) for v in row) for row in entries],
            )
            db.executemany(
                f"INSERT INTO audit_chain ({', '.join(_LINK_COLUMNS)}) VALUES (?,?,?,?,?)",
                [tuple(plain(v) for v in row) for row in links],
            )
        db.commit()
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the loaded rows into the database file, as for an old log
    finally:
        db.close()
    return time.perf_counter() - started


async def _probe(base: str, token: str, read_path: str, stop: asyncio.Event, rate: float = 20) -> dict:
    """/healthz and an authenticated read, each `rate` times a second on a fixed timetable (latency from the
    scheduled time), until `stop`."""
    lat: dict[str, list[float]] = {"healthz": [], "read": []}
    failed = {"healthz": 0, "read": 0}
    auth = {"Authorization": f"Bearer {token}"}
    tasks: set[asyncio.Task] = set()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(name: str, due: float) -> None:
            try:
                if name == "healthz":
                    r = await client.get("/healthz")
                else:
                    r = await client.get(read_path, headers=auth)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat[name].append((time.monotonic() - due) * 1000)
            failed[name] += not ok

        due = time.monotonic()
        k = 0
        while not stop.is_set():
            # Always yield: behind schedule, a loop that never awaited would starve everything else, `stop` too.
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one("healthz" if k % 2 == 0 else "read", due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due, k = due + 1 / (2 * rate), k + 1
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    return {
        name: {
            "requests": len(v),
            "p50_ms": round(percentile(v, 50), 1),
            "p99_ms": round(percentile(v, 99), 1),
            "max_ms": round(max(v, default=0), 1),
            "failed": failed[name],
        }
        for name, v in lat.items()
    }


async def verify_while_serving(env: dict, base: str, token: str, read_path: str) -> dict:
    """Time `member-exchange verify-audit` (its own process, as an operator runs it) while the probe runs; the probe
    also runs 5 s before, for comparison."""
    stop = asyncio.Event()
    before = asyncio.create_task(_probe(base, token, read_path, stop))
    await asyncio.sleep(5)
    stop.set()
    idle = await before
    stop = asyncio.Event()
    during = asyncio.create_task(_probe(base, token, read_path, stop))
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "verify-audit",
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    busy = await during
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        report = {"ok": False, "error": err.decode()[-2000:]}
    return {
        "seconds": round(seconds, 1),
        "ok": report.get("ok"),
        "size": report.get("size"),
        "first_problem": report.get("first_problem"),
        "probe_before": idle,
        "probe_during": busy,
    }


async def main(kind: str, entries: int) -> dict:
    """Stand-alone: a fresh database with the registry, one district client and `entries` audit entries."""
    import secrets
    import shutil
    import tempfile
    from pathlib import Path

    from bench.common import cli, free_port, fresh_pg_database, service_env, start_service, stop_service, wait_ready

    work = Path(tempfile.mkdtemp(prefix=f"mx-bench-audit-{kind}-"))
    sqlite_path = str(work / "bench.db") if kind == "sqlite" else None
    url = f"sqlite:///{sqlite_path}" if sqlite_path else await fresh_pg_database("mx_bench_audit")
    env = service_env(url, work, MX_ENVIRONMENT="production", MX_KEY_PASSPHRASE=secrets.token_urlsafe(24))
    cli(env, "init")
    district = cli(env, "create-client", "--org", "ba-dinh")
    loaded = load_audit_sqlite(sqlite_path, entries) if sqlite_path else await load_audit_pg(url, entries)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_service(env, port)
    try:
        await wait_ready(base, proc)
        token = await client_token(base, district)
        result = await verify_while_serving(env, base, token, "/api/v1/notices/inbox?limit=10")
    finally:
        stop_service(proc)
        shutil.rmtree(work, ignore_errors=True)
    return {"database": kind, "entries": entries, "load_seconds": round(loaded, 1), **result}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.db, args.entries)), indent=2, ensure_ascii=False))
