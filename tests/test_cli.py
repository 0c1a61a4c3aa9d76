"""The operator's command line, run as the installed console script: a mistake gives one clear line, never a
traceback; every option explains itself."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser

SCRIPT = str(Path(sys.executable).parent / "member-exchange")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict:
    """Its own SQLite database: rotating keys must not touch the test run's."""
    data = tmp_path_factory.mktemp("cli")
    return {
        **os.environ,
        "MX_DATA_DIR": str(data),
        "MX_DATABASE_URL": f"sqlite:///{data / 'cli.db'}",
        "MX_ENVIRONMENT": "development",
        "MX_LOG_LEVEL": "WARNING",
    }


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("org", ["Ba Đình", "BA-DINH", "Quận ủy Ba Đình"])
def test_a_committee_name_instead_of_its_code_points_to_the_code(cli_env, org):
    line = one_line_error(run(cli_env, "create-user", "--org", org, "--username", "nguyen.thi.lan", "--role", "clerk"))
    assert "did you mean --org ba-dinh" in line


def test_an_unknown_committee_code_lists_the_valid_codes(cli_env):
    line = one_line_error(run(cli_env, "create-client", "--org", "ba-dinh-cu"))
    assert "unknown committee code" in line and "khoi-cqtp" in line and "ba-dinh" in line and "ung-hoa" in line


def test_a_username_with_spaces_says_what_a_username_may_contain(cli_env):
    line = one_line_error(
        run(cli_env, "create-user", "--org", "ba-dinh", "--username", "nguyen thi lan", "--role", "clerk")
    )
    assert "--username 'nguyen thi lan'" in line and "lowercase" in line


def test_a_blank_full_name_names_the_option(cli_env):
    result = run(
        cli_env, "create-user", "--org", "ba-dinh", "--username", "le.van.a", "--role", "clerk", "--full-name", " "
    )
    assert one_line_error(result).endswith("--full-name: không được để trống")


def test_init_demo_creates_the_demo_members_once_and_is_refused_in_production(cli_env):
    first = run(cli_env, "init", "--demo")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["demo_members_created"] >= 3
    assert json.loads(run(cli_env, "init", "--demo").stdout)["demo_members_created"] == 0
    production = {**cli_env, "MX_ENVIRONMENT": "production", "MX_KEY_PASSPHRASE": "a-real-secret-of-enough-length"}
    assert "refused in production" in one_line_error(run(production, "init", "--demo"))


def test_rotate_keys_says_when_running_services_use_the_new_key(cli_env):
    assert run(cli_env, "init").returncode == 0
    result = run(cli_env, "rotate-keys")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kid"] and out["in_use_by"] > out["created_at"]
    assert "within 60 s" in result.stderr and out["in_use_by"] in result.stderr


def test_every_option_has_a_help_text():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    missing = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, sub in commands.items()
        for action in sub._actions
        if action.option_strings and action.dest != "help" and not action.help
    ]
    assert not missing
