"""The README's integration walkthrough works as written: its shell blocks, taken from README.md, run in bash
against a live demo service (`member-exchange init --demo`, then a real service process), as a new district
integrator would paste them. A documented command that stops working fails this test."""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.live import ROOT, ready, serve, stop

README = ROOT / "README.md"
SECTION = "## Integrate your district system"
SCRIPT = str(Path(sys.executable).parent / "member-exchange")
BASH = shutil.which("bash") or "/bin/bash"


def walkthrough_blocks() -> list[str]:
    """The `sh` blocks of the walkthrough section, up to its first subsection, dedented as a reader copies them."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n")
    end = text.index("\n### ", start)
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", text[start:end], re.S | re.M)
    return [textwrap.dedent(body) for _, body in blocks]


def run_bash(script: str, base: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env={**os.environ, "BASE_URL": base},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def demo_service():
    """What scripts/serve-demo.sh does: init with the demo accounts and members, then the service."""
    init = await asyncio.to_thread(
        subprocess.run, [SCRIPT, "init", "--demo"], capture_output=True, text=True, timeout=120, check=False
    )
    assert init.returncode == 0, init.stderr[-2000:]
    proc, base = serve(MX_LOG_LEVEL="ERROR", MX_WEBHOOK_WORKER="false")
    try:
        await ready(base, proc)
        yield base
    finally:
        stop(proc)


def test_the_walkthrough_has_the_documented_steps():
    blocks = walkthrough_blocks()
    assert len(blocks) >= 6
    text = "\n".join(blocks)
    assert "uuidgen" not in text and "python3 -c 'import uuid" in text
    assert "docs/samples/bien-ban.pdf" in text and (ROOT / "docs/samples/bien-ban.pdf").read_bytes()[:5] == b"%PDF-"


async def test_the_readme_walkthrough_runs_as_written(demo_service, party):
    blocks = walkthrough_blocks()
    # Each block announces itself on stderr, so a failure names the README block that broke.
    script = "\n".join(f"echo '>>> README block {i}' >&2\n{block}" for i, block in enumerate(blocks, 1))
    result = await asyncio.to_thread(run_bash, script, demo_service)
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n{result.stdout[-2000:]}"
    push = next((b for b in blocks if "Idempotency-Key: $KEY" in b), None)
    assert push is not None, "step 4 makes one Idempotency-Key per notice, in $KEY"
    # A retry sends the same key again (the same shell, so $KEY and $TOKEN are still set).
    retry = "\n".join(line for line in push.splitlines() if not line.startswith("KEY="))
    again = await asyncio.to_thread(
        run_bash, f"{script}\necho '>>> the push again, with the same key' >&2\n{retry}", demo_service
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert '"violation.reported"' in result.stdout and '"items"' in result.stdout

    khoi = await party("khoi_clerk")
    inbox: list[dict] = []
    deadline = time.monotonic() + 15  # on PostgreSQL a pull waits for older transactions (see the README)
    while time.monotonic() < deadline:
        inbox = (await khoi.get("/api/v1/notices/inbox", params={"limit": 200})).json()["items"]
        if sum(n["kind"] == "info.requested" for n in inbox) >= 2:
            break
        await asyncio.sleep(0.2)
    reports = [n for n in inbox if n["kind"] == "violation.reported" and n["member_card_no"] == "01234567"]
    assert len(reports) == 2, "one per run of the walkthrough; the retry with the same key made none"
    carried = [n for n in inbox if n["kind"] == "info.requested"]
    assert len(carried) == 2 and carried[0]["documents"][0]["file_name"] == "bien-ban.pdf", carried
