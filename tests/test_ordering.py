"""Order without transaction ids: restore into a new server, foreign transactions, several processes.

These tests start private PostgreSQL clusters (initdb on a free loopback port, in a temporary directory) and real
service processes against them, in both passes of the suite; they are skipped where the PostgreSQL binaries are
absent."""

import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.exchange import member_body, new_card, violation
from tests.live import ROOT, auth_header, ready, serve, stop
from tests.receiver import free_port

_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
pytestmark = pytest.mark.skipif(
    _BIN is None or not Path(_BIN, "initdb").exists(), reason="PostgreSQL binaries (initdb, pg_ctl) are absent"
)


class Cluster:
    """A private PostgreSQL cluster on a free loopback port, owned by the test."""

    def __init__(self, next_xid: int | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mx-pg-"))
        self.port = free_port()
        user = {} if os.geteuid() != 0 else {"user": "postgres"}
        self._as = ["runuser", "-u", "postgres", "--"] if user else []
        if user:
            shutil.chown(self.dir, "postgres")
        subprocess.run(
            [*self._as, f"{_BIN}/initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        if next_xid:  # a server that has lived long: transaction ids far above a fresh one's
            subprocess.run(
                [*self._as, f"{_BIN}/pg_resetwal", "-x", str(next_xid), str(self.dir / "data")],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            [
                *self._as,
                f"{_BIN}/pg_ctl",
                "-D",
                str(self.dir / "data"),
                "-l",
                str(self.dir / "log"),
                "-w",
                "-o",
                f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def run(self, tool: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([f"{_BIN}/{tool}", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", *args],
                              check=True, capture_output=True, **kw)  # fmt: skip

    def close(self) -> None:
        subprocess.run(
            [*self._as, f"{_BIN}/pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    made = []

    def make(**kw) -> Cluster:
        made.append(Cluster(**kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def cli(url: str, *args: str, data_dir: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MX_DATABASE_URL": url, "MX_DATA_DIR": data_dir, "MX_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


async def _create_db(url: str) -> None:
    base, _, name = url.rpartition("/")
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _service(url: str, data_dir: str):
    """init (migrate, registry, keys, test accounts), then one service process."""
    result = cli(url, "init", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    from tests.helpers import ensure_test_accounts

    await _accounts(url, ensure_test_accounts)
    proc, base = serve(MX_DATABASE_URL=url, MX_DATA_DIR=data_dir, MX_AUDIT_SEAL_INTERVAL_SECONDS="0.2")
    await ready(base, proc)
    return proc, base


async def _accounts(url: str, ensure) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with async_sessionmaker(engine, class_=AsyncSession)() as session:
            await ensure(session)
            await session.commit()
    finally:
        await engine.dispose()


async def _member(client: httpx.AsyncClient, auth: dict) -> str:
    card = new_card()
    r = await client.put(f"/api/v1/members/{card}", json=member_body("ba-dinh"), headers=auth)
    assert r.status_code == 201, r.text
    return card


async def _pull_all(client: httpx.AsyncClient, auth: dict, cursor: str | None = None) -> tuple[list[str], str | None]:
    ids = []
    for _ in range(1000):
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/notices/inbox", params=params, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [n["id"] for n in body["items"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return ids, cursor
    raise AssertionError("pull did not end")


async def _until(pred, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await pred()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_restore_into_a_fresh_cluster_keeps_the_order_and_the_audit_chain(cluster, tmp_path):
    first = cluster(next_xid=8 * 2**20)  # the first transaction id of a commit-log segment
    url = first.url("mx")
    await _create_db(url)
    data_dir = str(tmp_path / "data")
    proc, base = await _service(url, data_dir)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            khoi = await auth_header(client, "khoi_clerk")
            card = await _member(client, khoi)
            pushed = [(await client.post("/api/v1/notices", json=violation(card), headers=khoi)) for _ in range(30)]
            assert all(r.status_code == 201 for r in pushed)
            ba_dinh = await auth_header(client, "ba_dinh_system")
            before, _ = await _until(lambda: _pull_all(client, ba_dinh), 10)
    finally:
        stop(proc)
    assert len(before) == 30
    dump = tmp_path / "mx.dump"
    first.run("pg_dump", "-Fc", "-f", str(dump), "mx")
    first.close()

    second = cluster()
    url = second.url("mx")
    await _create_db(url)
    second.run("pg_restore", "--no-owner", "-d", "mx", str(dump))
    proc, base = await _service(url, data_dir)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            ba_dinh = await auth_header(client, "ba_dinh_system")
            restored, cursor = await _pull_all(client, ba_dinh)
            assert restored == [n["id"] for n in (r.json() for r in pushed)], "a pull from the start returns every one"
            result = cli(url, "verify-audit", data_dir=data_dir)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
            khoi = await auth_header(client, "khoi_clerk")
            new = [
                (await client.post("/api/v1/notices", json=violation(card), headers=khoi)).json()["id"]
                for _ in range(5)
            ]

            async def more():
                ids, _ = await _pull_all(client, ba_dinh, cursor)
                return ids if len(ids) >= 5 else None

            assert await _until(more) == new, "new pushes come after the restored ones"
            full, _ = await _pull_all(client, ba_dinh)
            assert full == restored + new
    finally:
        stop(proc)
    result = cli(url, "verify-audit", data_dir=data_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.slow
async def test_a_write_transaction_open_in_another_database_does_not_hold_back_pulls(cluster, tmp_path):
    c = cluster()
    url = c.url("mx")
    await _create_db(url)
    await _create_db(c.url("other"))
    other = await asyncpg.connect(c.url("other"))
    await other.execute("CREATE TABLE t (x int)")
    proc, base = await _service(url, str(tmp_path / "data"))
    try:
        holder = other.transaction()
        await holder.start()
        await other.execute("INSERT INTO t VALUES (1)")  # a write transaction, held open for the whole test
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            khoi = await auth_header(client, "khoi_clerk")
            ba_dinh = await auth_header(client, "ba_dinh_system")
            card = await _member(client, khoi)
            notice = (await client.post("/api/v1/notices", json=violation(card), headers=khoi)).json()

            async def seen():
                ids, _ = await _pull_all(client, ba_dinh)
                return notice["id"] in ids

            assert await _until(seen, timeout=2.0), "the notice is pullable within 2 s"
        await holder.rollback()
    finally:
        await other.close()
        stop(proc)


@pytest.mark.slow
async def test_two_service_processes_pushing_at_once_each_notice_is_pulled_exactly_once_in_a_stable_order(
    cluster, tmp_path
):
    c = cluster()
    url = c.url("mx")
    await _create_db(url)
    await _create_db(c.url("busy"))
    data_dir = str(tmp_path / "data")
    proc, base = await _service(url, data_dir)
    # The server is busy elsewhere: another database has a write transaction open for the whole run.
    busy = await asyncpg.connect(c.url("busy"))
    await busy.execute("CREATE TABLE t (x int)")
    hold = busy.transaction()
    await hold.start()
    await busy.execute("INSERT INTO t VALUES (1)")
    services = [(proc, base), serve(MX_DATABASE_URL=url, MX_DATA_DIR=data_dir)]
    await ready(services[1][1], services[1][0])
    clients = [httpx.AsyncClient(base_url=b, timeout=30) for _, b in services]
    try:
        khois = [await auth_header(cl, "khoi_clerk") for cl in clients]
        ba_dinh = await auth_header(clients[0], "ba_dinh_system")
        card = await _member(clients[0], khois[0])
        pushed: list[str] = []
        seen: list[str] = []
        done = asyncio.Event()

        async def writer(cl, auth):
            for _ in range(25):
                r = await cl.post("/api/v1/notices", json=violation(card), headers=auth)
                assert r.status_code == 201
                pushed.append(r.json()["id"])

        async def puller():
            cursor = None
            while True:
                finished = done.is_set()
                ids, cursor = await _pull_all(clients[1], ba_dinh, cursor)
                seen.extend(ids)
                if finished and len(seen) >= len(pushed):
                    return
                await asyncio.sleep(0.02)

        async def writers():
            await asyncio.gather(*(writer(cl, a) for cl, a in zip(clients, khois, strict=True) for _ in range(2)))
            done.set()

        await asyncio.wait_for(asyncio.gather(writers(), puller()), timeout=60)
        assert len(seen) == len(set(seen)) == 100, "never repeated"
        assert set(seen) == set(pushed), "never missed"
        again, _ = await _pull_all(clients[0], ba_dinh)
        assert again == seen, "a pull from the start gives the same order"
    finally:
        await busy.close()
        for cl in clients:
            await cl.aclose()
        for p, _ in services:
            stop(p)
