"""The production image's start-up without Docker (Docker cannot run on the development machine or in CI): the
Dockerfile is read, its files copied as its COPY lines say, the package installed with its own `pip install .`
(dependencies come from the test environment, installed from the same pyproject.toml), and its CMD run with its
ENV settings against a fresh data folder, until its HEALTHCHECK (/readyz) passes. compose.yaml is checked for what
the image needs around it: the data volume, the mx_owner/mx_app split and the health check."""

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.live import ROOT, ready, stop
from tests.receiver import free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, args = line.partition(" ")
            out.append((name.upper(), args.strip()))
    return out


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in instructions():
        if name == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def one(name: str) -> str:
    found = [args for n, args in instructions() if n == name]
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


def start(command: list[str], workdir: Path, env: dict) -> subprocess.Popen:
    """In its own process group (the CMD starts several workers), as tests/live.py does."""
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def test_compose_keeps_the_data_runs_as_the_app_role_and_checks_readiness():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    app, migrate = services["app"], services["migrate"]
    assert f"app-data:{image_env()['MX_DATA_DIR']}" in app["volumes"], "uploaded documents must outlive the container"
    assert "app-data" in compose["volumes"]
    assert app["environment"]["DATABASE_URL"].startswith("postgresql://mx_app:")
    assert migrate["environment"]["DATABASE_URL"].startswith("postgresql://mx_owner:")
    assert migrate["command"] == ["member-exchange", "init"]
    grants = services["audit-grants"]
    assert "/deploy/postgres-audit-grants.sql" in grants["command"] and "mx_owner" in grants["command"]
    assert app["depends_on"]["audit-grants"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert services["db"]["environment"]["POSTGRES_USER"] == "postgres", "the service never connects as it"
    init = (ROOT / "deploy" / "docker-initdb.sh").read_text()
    assert "/deploy/postgres-roles.sql" in init and os.access(ROOT / "deploy" / "docker-initdb.sh", os.X_OK)


@pytest.mark.slow
async def test_the_image_start_up_serves_and_passes_its_health_check(tmp_path):
    workdir, site, data = tmp_path / "srv", tmp_path / "site", tmp_path / "data"
    workdir.mkdir()
    data.mkdir()
    for name, args in instructions():  # COPY pyproject.toml README.md alembic.ini ./ ; COPY app ./app ; ...
        if name == "COPY":
            *sources, target = args.split()
            for source in sources:
                dest = workdir / target / source if target.endswith("/") else workdir / target
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, dest)
    install = shlex.split(one("RUN").split("&&")[0])
    assert install == ["pip", "install", "."], install
    built = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", *install, "--no-deps", "--quiet", "--target", str(site)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]

    port = free_port()
    command = json.loads(one("CMD"))
    assert command[:2] == ["member-exchange", "serve"] and "--workers" in command
    # Same command; only loopback and a free port here (the image listens on 0.0.0.0:8000).
    command = [str(site / "bin" / command[0]), *command[1:]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {
        "PATH": f"{site / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(site),
        **image_env(),
        "MX_DATA_DIR": str(data),  # the image's /var/lib/member-exchange (the compose volume)
        "DATABASE_URL": f"sqlite:///{data / 'member-exchange.db'}",
        "MX_KEY_PASSPHRASE": "a-real-passphrase-for-the-start-up-test",
        "MX_LOG_LEVEL": "WARNING",
    }
    assert env["MX_ENVIRONMENT"] == "production"
    proc = start(command, workdir, env)
    try:
        await ready(f"http://127.0.0.1:{port}", proc, timeout=120)
        health = json.loads(one("HEALTHCHECK").split("CMD", 1)[1])
        health = [h.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for h in health]
        health[0] = sys.executable if health[0] == "python" else health[0]
        checked = await asyncio.to_thread(subprocess.run, health, capture_output=True, timeout=30, check=False)
        assert checked.returncode == 0, checked.stderr
    finally:
        stop(proc)
    assert (data / "member-exchange.db").exists(), "the state lives in MX_DATA_DIR, the volume"
