"""Shared pieces of the benchmarks: a fresh database, the service under test, accounts, tokens."""

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Benchmarks of several checkouts may share one server: each checkout's databases get their own suffix, so that
# one run never drops the database another is measuring.
_SUFFIX = hashlib.sha256(str(ROOT).encode()).hexdigest()[:6]


async def fresh_pg_database(name: str) -> str:
    """An empty database named `name`_<this checkout's suffix>; an earlier one of that name is dropped."""
    name = f"{name}_{_SUFFIX}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def cli(env: dict, *args: str) -> dict | None:
    """Run a `member-exchange` command; its last line of output, as JSON when it is."""
    out = (
        subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()
    )
    try:
        return json.loads(out[-1]) if out else None
    except json.JSONDecodeError:
        return None


def service_env(database_url: str, data_dir: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "MX_DATA_DIR": str(data_dir),
        "MX_LOG_LEVEL": "WARNING",
        "MX_ENVIRONMENT": "development",
        **extra,
    }


def start_service(env: dict, port: int, workers: int = 2) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-3000:])
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    proc.terminate()
    raise RuntimeError("service did not become ready: " + proc.stderr.read().decode()[-3000:])


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def password_token(base: str, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
        )
        r.raise_for_status()
        return r.json()["access_token"]


async def client_token(base: str, client: dict) -> str:
    """A system client's token (`client`: a dict with `client_id` and `client_secret`, as bench.accounts writes)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        r = await http.post("/api/v1/auth/token", data=form)
        r.raise_for_status()
        return r.json()["access_token"]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
