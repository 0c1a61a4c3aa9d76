"""Measure a city-wide registry edition: `registry plan` and `registry apply` over N synthetic members.

    python -m bench.registry_edition [--members 475000] [--open-notices 50000] [--db both|postgresql|sqlite]

On a fresh database: `init`, `generate-members`, then M open notices from the Khối to the members' districts
(written straight into the table: what a round in progress leaves), and an edition that retires all 30 districts
into three ward committees each, members mapped by ward name (two ward names left out, so some members are
unmappable). Times the plan and the application with the operator's command, and prints and saves
(bench/results/registry_edition.json) the times and the counts.
"""

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from app.devdata.synthetic import WARD_NAMES
from bench.common import RESULTS, ROOT, cli, fresh_pg_database, service_env

LEFT_OUT = WARD_NAMES[:2]  # wards "split between new wards": their members are unmappable


def edition(districts: list[str]) -> dict:
    committees, retire = [], []
    for d in districts:
        successors = [f"{d}-phuong-{k}" for k in (1, 2, 3)]
        committees += [
            {"code": s, "kind": "ward", "side": "residence", "name": f"Đảng ủy phường {s}", "unit": "phường"}
            for s in successors
        ]
        wards = {}
        for i, name in enumerate(n for n in WARD_NAMES if n not in LEFT_OUT):
            for prefix in ("Phường", "Xã"):
                wards[f"{prefix} {name}"] = successors[i % 3]
        retire.append({"code": d, "successors": successors, "wards": wards})
    return {
        "edition": "bench-city-wide",
        "effective": "2025-07-01",
        "description": "Đo hiệu năng: ví dụ, không phải dữ liệu thật.",
        "example": True,
        "committees": committees,
        "retire": retire,
    }


def _open_notice_rows(members: list[tuple[str, str]], count: int) -> list[tuple]:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    rows = []
    for card, district in members[:count]:
        notice_id = uuid.uuid4().hex
        payload = json.dumps({"question": "Đo hiệu năng", "due_date": None})
        rows.append((notice_id, card, district, notice_id, payload, now))
    return rows


async def _open_notices_pg(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO notices (id, kind, sender_org, recipient_org, member_card_no, thread_id, payload, status, "
            "created_at) SELECT id, 'info.requested', 'khoi-cqtp', residence_org, party_card_no, id, "
            "'{\"question\": \"Đo hiệu năng\"}'::jsonb, 'delivered', now() FROM "
            "(SELECT gen_random_uuid() AS id, residence_org, party_card_no FROM members ORDER BY party_card_no "
            f"LIMIT {int(count)}) m"
        )
    finally:
        await conn.close()


def _open_notices_sqlite(path: str, count: int) -> None:
    conn = sqlite3.connect(path)
    try:
        members = conn.execute("SELECT party_card_no, residence_org FROM members ORDER BY party_card_no").fetchall()
        conn.executemany(
            "INSERT INTO notices (id, kind, sender_org, recipient_org, member_card_no, thread_id, payload, status, "
            "created_at) VALUES (?, 'info.requested', 'khoi-cqtp', ?, ?, ?, ?, 'delivered', ?)",
            [(i, d, c, t, p, n) for i, c, d, t, p, n in _open_notice_rows(members, count)],
        )
        conn.commit()
    finally:
        conn.close()


def _timed(env: dict, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return elapsed, json.loads(run.stdout)


async def measure(db: str, members: int, open_notices: int) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="mx-bench-edition-"))
    if db == "postgresql":
        url = await fresh_pg_database("mx_bench_edition")
    else:
        url = f"sqlite:///{data_dir / 'bench.db'}"
    env = service_env(url, data_dir)
    cli(env, "init")
    cli(env, "generate-members", "--count", str(members))
    if db == "postgresql":
        await _open_notices_pg(url, open_notices)
    else:
        _open_notices_sqlite(str(data_dir / "bench.db"), open_notices)
    registry = json.loads((ROOT / "app" / "data" / "organizations.json").read_text(encoding="utf-8"))
    districts = [o["code"] for o in registry["organizations"] if o.get("side") == "residence"]
    path = data_dir / "edition.json"
    path.write_text(json.dumps(edition(districts), ensure_ascii=False), encoding="utf-8")
    plan_s, plan = _timed(env, "registry", "plan", str(path))
    apply_s, applied = _timed(env, "registry", "apply", str(path))
    again_s, again = _timed(env, "registry", "apply", str(path))
    assert applied["members_reassigned"] == plan["members_reassigned"], "apply did not do what the plan said"
    assert again["already_applied"] is True
    return {
        "db": db,
        "members": members,
        "open_notices": open_notices,
        "retired": len(plan["retired"]),
        "added": len(plan["added"]),
        "members_reassigned": applied["members_reassigned"],
        "unmappable": len(applied["unmappable"]),
        "notices_transferred": applied["notices_transferred"],
        "notices_left": applied["notices_left"],
        "plan_seconds": round(plan_s, 1),
        "apply_seconds": round(apply_s, 1),
        "apply_again_seconds": round(again_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=475_000)
    parser.add_argument("--open-notices", type=int, default=50_000)
    parser.add_argument("--db", choices=["both", "postgresql", "sqlite"], default="both")
    args = parser.parse_args()
    dbs = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    results = [asyncio.run(measure(db, args.members, args.open_notices)) for db in dbs]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "registry_edition.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
