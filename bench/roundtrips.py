"""Statements per request on PostgreSQL: push, pull 50, acknowledge, read one, counted from the server's own log.

    python -m bench.roundtrips [--requests 50] [--log /var/log/postgresql/postgresql-15-main.log]

pg_stat_statements needs a server-wide preload; instead this turns `log_statement = 'all'` on for its own fresh
database only (ALTER DATABASE … SET), starts the service (1 worker, production settings), sends each kind of request
one at a time, and counts the statements the server logged for that database while each kind ran (the background
sealer and sequencer included: they run because of those requests). It prints the count per request and the
statements of one request of each kind, in order.
"""

import argparse
import asyncio
import json
import re
import secrets
import tempfile
import time
from datetime import date
from pathlib import Path

import asyncpg
import httpx

from bench.common import (
    PG_ADMIN,
    cli,
    client_token,
    free_port,
    fresh_pg_database,
    service_env,
    start_service,
    stop_service,
    wait_ready,
)
from bench.load import load_notices

DB = "mx_bench_roundtrips"


def _statements(log: Path, offset: int, db_name: str) -> list[str]:
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    marker = f"@{db_name} LOG:  "
    out = []
    for line in text.splitlines():
        if marker in line:
            what = line.split(marker, 1)[1]
            if what.startswith(("statement: ", "execute ")):
                out.append(re.sub(r"\s+", " ", what)[:160])
    return out


async def main(args: argparse.Namespace) -> dict:
    url = await fresh_pg_database(DB)
    db_name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f"ALTER DATABASE {db_name} SET log_statement = 'all'")
    finally:
        await admin.close()
    work = Path(tempfile.mkdtemp(prefix="mx-bench-rt-"))
    env = service_env(url, work, MX_ENVIRONMENT="production", MX_KEY_PASSPHRASE=secrets.token_urlsafe(24))
    cli(env, "init")
    cli({**env, "MX_ENVIRONMENT": "development"}, "generate-members", "--count", "3000")
    await load_notices(url, 20_000)
    district = cli(env, "create-client", "--org", "ba-dinh")
    conn = await asyncpg.connect(url)
    cards = [
        r[0]
        for r in await conn.fetch(
            "SELECT party_card_no FROM members WHERE residence_org='ba-dinh' AND residence_status='accepted'"
        )
    ]
    ids = [str(r[0]) for r in await conn.fetch("SELECT id FROM notices WHERE recipient_org='ba-dinh' LIMIT 500")]
    await conn.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_service(env, port, workers=1)
    log = Path(args.log)
    result: dict = {}
    try:
        await wait_ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            auth = {"Authorization": f"Bearer {await client_token(base, district)}"}

            def push(i: int):
                body = {
                    "kind": "violation.reported",
                    "member_card_no": cards[i % len(cards)],
                    "payload": {"summary": "Đếm câu lệnh", "observed_on": date.today().isoformat(), "severity": "low"},
                }
                return client.post("/api/v1/notices", json=body, headers={**auth, "Idempotency-Key": f"rt-{i}"})

            kinds = {
                "push": push,
                "pull": lambda i: client.get("/api/v1/notices/inbox", params={"limit": 50}, headers=auth),
                "ack": lambda i: client.post(f"/api/v1/notices/{ids[i]}/ack", headers=auth),
                "read": lambda i: client.get(f"/api/v1/notices/{ids[len(ids) // 2 + i]}", headers=auth),
            }
            for name, call in kinds.items():
                for i in range(5):  # warm: prepared statements, caches
                    await call(args.requests + i)
                await asyncio.sleep(1.5)
                offset = log.stat().st_size
                for i in range(args.requests):
                    r = await call(i)
                    assert r.status_code < 300, (name, r.status_code, r.text[:200])
                    if i == 0:
                        await asyncio.sleep(0.3)
                        first = _statements(log, offset, db_name)
                await asyncio.sleep(1.0)  # the background sequencer and sealer finish what these requests started
                every = _statements(log, offset, db_name)
                result[name] = {"statements_per_request": round(len(every) / args.requests, 2), "one_request": first}
                time.sleep(0.1)
    finally:
        stop_service(proc)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    out = asyncio.run(main(parser.parse_args()))
    print(json.dumps(out, indent=2, ensure_ascii=False))
