"""A real service process on loopback, for the tests that need one: several processes, restarts, fuzzing,
a browser. It uses the test run's database (the environment conftest set up)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import ACCOUNTS
from tests.receiver import free_port

ROOT = Path(__file__).resolve().parent.parent


def serve(port: int | None = None, *, workers: int = 1, **env: str) -> tuple[subprocess.Popen, str]:
    """Start `uvicorn app.main:app` (with `--workers` when more than one) in its own process group; returns it and
    its base URL."""
    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            *(["--workers", str(workers)] if workers > 1 else []),
            "--no-server-header",
        ],
        cwd=ROOT,
        env={**os.environ, "MX_LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


async def ready(base: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode()[-2000:])
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the service did not become ready")


def ready_sync(base: str, proc: subprocess.Popen) -> None:
    asyncio.run(ready(base, proc))


def stop(proc: subprocess.Popen, *, kill: bool = False) -> None:
    """Terminate (or SIGKILL, the whole process group) and wait."""
    if not kill:
        proc.terminate()
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            pass  # a graceful shutdown that hangs is killed; the test then reports what it found
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


def login_form(name: str) -> dict:
    spec = ACCOUNTS[name]
    if spec.kind == "user":
        return {"grant_type": "password", "username": spec.login, "password": spec.secret}
    return {"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret}


async def auth_header(client: httpx.AsyncClient, name: str) -> dict:
    r = await client.post("/api/v1/auth/token", data=login_form(name))
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
