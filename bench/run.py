"""The benchmark: the service as district systems load it, against this machine's own ceiling.

    python -m bench.run                      # PostgreSQL and SQLite, 10 s per scenario, 64 connections
    python -m bench.run --db postgresql --duration 20 --scale    # also 10,000 vs 1,000,000 stored notices
    python -m bench.run --verify-audit 1000000                   # also verify-audit over 1,000,000 entries

For each database it starts the service with production settings (2 uvicorn workers, access log off), loads
9,000 members and 200,000 notices, and drives it with wrk (Lua scripts in bench/lua) from a separate process on
loopback: a bare /healthz (the ceiling), then the 31 committees' systems at a fixed rate (5 req/s each, open loop:
bench/fixed_rate.py) with the pull lag under that load, then push, pull 50, acknowledge, read one, upload 200 KB
at saturation (64 connections). It reports
requests per second, p50 and p99 latency, the ratio to the ceiling and the peak memory of each worker, and writes
bench/results/bench.json and bench/results/bench.md.
"""

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import asyncpg

from bench import audit_volume, fixed_rate
from bench.common import (
    RESULTS,
    ROOT,
    cli,
    client_token,
    free_port,
    fresh_pg_database,
    password_token,
    percentile,
    service_env,
    start_service,
    stop_service,
    wait_ready,
)
from bench.load import load_notices, load_notices_sqlite
from tests import files

LUA = ROOT / "bench" / "lua"
TARGETS = {"push": 0.08, "pull": 0.10, "ack": 0.15}
SQLITE_TARGETS = {"push": 0.04}
FIXED_P99 = {"postgresql": 50, "sqlite": 100}


def _wrk(url: str, script: str, data_file: Path, duration: int, connections: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", str(LUA / script)]
    cmd += [url]
    if script:
        cmd += ["--", str(data_file)]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_LUA": str(LUA)},
        check=True,
    ).stdout
    return _parse(out)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}[unit]


def _parse(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": round(rps, 1),
        "p50_ms": round(lat.get("50", 0), 2),
        "p99_ms": round(lat.get("99", 0), 2),
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1).strip() if sock else None,
    }


def _workers(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _peak_rss_mb(pids: list[int]) -> list[float]:
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            peaks.append(round(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024, 1))
        except (OSError, AttributeError):
            continue
    return peaks


def _write(path: Path, token: str, items: list[str]) -> Path:
    path.write_text("\n".join([token, *items]) + "\n")
    return path


async def _district_data(db_url: str, sqlite_path: str | None) -> tuple[list[str], list[str]]:
    """Ba Đình's members and the notices addressed to it (for pull cursors, acks and reads)."""
    if sqlite_path:
        import sqlite3

        con = sqlite3.connect(sqlite_path)
        cards = [
            r[0]
            for r in con.execute(
                "SELECT party_card_no FROM members WHERE residence_org='ba-dinh' AND residence_status='accepted'"
            )
        ]
        rows = con.execute(
            "SELECT id, position FROM notices WHERE recipient_org='ba-dinh' ORDER BY position"
        ).fetchall()
        con.close()
        ids = [str(__import__("uuid").UUID(r[0])) for r in rows]
        keys = [r[1] for r in rows]
    else:
        conn = await asyncpg.connect(db_url)
        cards = [
            r[0]
            for r in await conn.fetch(
                "SELECT party_card_no FROM members WHERE residence_org='ba-dinh' AND residence_status='accepted'"
            )
        ]
        rows = await conn.fetch("SELECT id, position FROM notices WHERE recipient_org='ba-dinh' ORDER BY position")
        await conn.close()
        ids = [str(r["id"]) for r in rows]
        keys = [r["position"] for r in rows]
    cursors = []
    for position in keys[::50][:2000]:
        raw = json.dumps([position], separators=(",", ":")).encode()
        cursors.append(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
    return cards, [*ids], cursors


async def _prepare(env: dict, url: str, sqlite_path: str | None, members: int, notices: int) -> tuple:
    """Migrate, load members and notices, create the accounts; returns them with Ba Đình's test data."""
    cli(env, "init")
    # Synthetic members are refused in production; only their generation runs as development.
    cli({**env, "MX_ENVIRONMENT": "development"}, "generate-members", "--count", str(members))
    if sqlite_path:
        load_notices_sqlite(sqlite_path, notices)
    else:
        await load_notices(url, notices)
    district = cli(env, "create-client", "--org", "ba-dinh")
    officer = cli(
        env,
        "create-user",
        "--org",
        "khoi-cqtp",
        "--username",
        "bench.officer",
        "--role",
        "clerk",
        "--role",
        "officer",
        "--full-name",
        "Cán bộ đo hiệu năng",
        "--position",
        "Chuyên viên",
    )
    return (district, officer, *await _district_data(url, sqlite_path))


def _party_clients(env: dict) -> list[dict]:
    """A system client for each of the 31 parties (one process: `python -m bench.accounts`)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.accounts"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def run_database(kind: str, args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"mx-bench-{kind}-"))
    sqlite_path = None
    if kind == "postgresql":
        url = await fresh_pg_database("mx_bench")
    else:
        sqlite_path = str(work / "bench.db")
        url = f"sqlite:///{sqlite_path}"
    env = service_env(
        url,
        work,
        MX_ENVIRONMENT="production",
        MX_KEY_PASSPHRASE=secrets.token_urlsafe(24),
        MX_DB_POOL_SIZE=str(args.pool),
        MX_DB_MAX_OVERFLOW="0",
        MX_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        MX_AUDIT_ENABLED="true",
    )
    district, officer, cards, ids, cursors = await _prepare(env, url, sqlite_path, args.members, args.notices)
    committees = None
    if args.fixed_rate_duration:
        committees = (_party_clients(env), await fixed_rate.party_data(url, sqlite_path))
    result = {"database": kind, "members": args.members, "stored_notices": args.notices, "scenarios": {}}
    result["scenarios"] = await _scenarios(
        env, args, district, officer, cards, ids, cursors, work, committees=committees
    )
    if args.audit_compare:
        off = await _scenarios(
            {**env, "MX_AUDIT_ENABLED": "false"},
            args,
            district,
            officer,
            cards,
            ids,
            cursors,
            work,
            only=("healthz", "push"),
        )
        result["push_audit_off"] = off["push"]
        result["healthz_audit_off"] = off["healthz"]
    if args.scale and kind == "postgresql":
        result["scale"] = await _scale(env, args, work)
    if args.verify_audit:
        result["verify_audit"] = await _verify_audit(env, url, sqlite_path, args.verify_audit, district, ids[0])
    shutil.rmtree(work, ignore_errors=True)
    return result


async def _scenarios(env, args, district, officer, cards, ids, cursors, work, only=None, committees=None) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_service(env, port, workers=2)
    out = {}
    try:
        await wait_ready(base, proc)
        token = await client_token(base, district)
        staff = await password_token(base, "bench.officer", officer["secret"])
        boundary = "mxbench" + secrets.token_hex(8)
        pdf = files.pdf("x" * 200_000)
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bien-ban.pdf"\r\n'
                f"Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + pdf
            + f"\r\n--{boundary}--\r\n".encode()
        )
        (work / "upload.body").write_bytes(body)
        probe_card, cards = cards[0], cards[1:]  # the probe's member: its notices are found by a filtered pull
        data = {
            "push": _write(work / "push.txt", token, [date.today().isoformat(), *cards]),
            "pull": _write(work / "pull.txt", token, [f"/api/v1/notices/inbox?limit=50&cursor={c}" for c in cursors]),
            "ack": _write(work / "ack.txt", token, [f"/api/v1/notices/{i}/ack" for i in ids[:20000]]),
            "read": _write(work / "read.txt", token, [f"/api/v1/notices/{i}" for i in ids[:20000]]),
            "upload": _write(work / "upload.txt", staff, [str(work / "upload.body"), boundary]),
        }
        plan = [
            ("healthz", "", None),
            ("push", "push.lua", data["push"]),
            ("pull", "get.lua", data["pull"]),
            ("ack", "post.lua", data["ack"]),
            ("read", "get.lua", data["read"]),
            ("upload", "upload.lua", data["upload"]),
        ]
        for name, script, data_file in plan:
            if only and name not in only:
                continue
            if name == "push" and committees:  # before the saturating runs leave their backlog in the database
                await asyncio.sleep(1)
                out["fixed_rate"] = await fixed_rate.run(
                    base,
                    *committees,
                    duration=args.fixed_rate_duration,
                    rate=args.rate,
                    lag_probe=lambda start, end: _pull_lag(
                        base, token, probe_card, end - start, probes=1, pause=0.01, warmup=start - time.monotonic()
                    ),
                )
            path = "/healthz" if name == "healthz" else "/"
            await asyncio.sleep(1)
            run = asyncio.to_thread(
                _wrk,
                base + path,
                script,
                data_file,
                args.duration if name != "upload" else max(5, args.duration // 2),
                args.connections if name != "upload" else 16,
            )
            if name == "push":  # pull lag, measured while wrk pushes
                out[name], out["pull_lag"] = await asyncio.gather(
                    run, _pull_lag(base, token, probe_card, args.duration)
                )
            else:
                out[name] = await run
        out["memory_peak_mb_per_worker"] = _peak_rss_mb(_workers(proc.pid))
    finally:
        stop_service(proc)
    ceiling = out.get("healthz", {}).get("rps") or 1
    for row in out.values():
        if isinstance(row, dict) and "rps" in row:
            row["ratio"] = round(row["rps"] / ceiling, 3)
    return out


async def _scale(env: dict, args: argparse.Namespace, work: Path) -> dict:
    """Push and pull with 10,000 and with 1,000,000 stored notices: throughput must stay flat."""
    points = {}
    for stored in (10_000, 1_000_000):
        db_name = f"mx_bench_scale_{stored}"
        scale_url = await fresh_pg_database(db_name)
        scale_env = {**env, "DATABASE_URL": scale_url}
        d, o, cards, ids, cursors = await _prepare(scale_env, scale_url, None, args.members, stored)
        points[str(stored)] = await _scenarios(
            scale_env, args, d, o, cards, ids, cursors, work, only=("healthz", "push", "pull")
        )
    return points


async def _verify_audit(env: dict, url: str, sqlite_path: str | None, entries: int, district: dict, notice: str):
    """`entries` more audit entries (a valid chain, written straight into the tables), then `member-exchange
    verify-audit` timed while a probe reads /healthz and one notice at a fixed rate."""
    if sqlite_path:
        loaded = await asyncio.to_thread(audit_volume.load_audit_sqlite, sqlite_path, entries)
    else:
        loaded = await audit_volume.load_audit_pg(url, entries)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_service(env, port, workers=2)
    try:
        await wait_ready(base, proc)
        token = await client_token(base, district)
        result = await audit_volume.verify_while_serving(env, base, token, f"/api/v1/notices/{notice}")
    finally:
        stop_service(proc)
    return {"entries": entries, "load_seconds": round(loaded, 1), **result}


async def _pull_lag(
    base: str, token: str, card: str, duration: float, probes: int = 4, pause: float = 0.002, warmup: float = 0.5
) -> dict:
    """Time from a push's 201 until a pull shows the notice, for pushes made while wrk pushes. Each probe pushes
    one notice at a time, then pulls the outbox filtered on the probe's member from its cursor until the notice
    appears. `p50_ms`/`p99_ms` end when that pull's response arrives (so they include one pull's own latency under
    the load); `first_pull` is the share of notices the very first pull after the 201 already returned."""
    import httpx

    lags: list[float] = []
    pulls_needed: list[int] = []
    failed: list = []
    auth = {"Authorization": f"Bearer {token}"}
    body = {
        "kind": "violation.reported",
        "member_card_no": card,
        "payload": {"summary": "Đo độ trễ", "observed_on": date.today().isoformat(), "severity": "low"},
    }
    pull = {"member": card, "limit": 200}

    async def probe(client: httpx.AsyncClient, end: float) -> None:
        cursor = None
        while time.monotonic() < end:
            key = {"Idempotency-Key": secrets.token_hex(8)}
            try:
                r = await client.post("/api/v1/notices", json=body, headers={**auth, **key})
                if r.status_code != 201:
                    failed.append(r.status_code)
                    continue
                answered, wanted = time.monotonic(), r.json()["id"]
                for attempt in range(1, 2001):
                    params = {**pull, **({"cursor": cursor} if cursor else {})}
                    page = (await client.get("/api/v1/notices/outbox", params=params, headers=auth)).json()
                    cursor = page["next_cursor"] or cursor
                    if any(n["id"] == wanted for n in page["items"]):
                        lags.append((time.monotonic() - answered) * 1000)
                        pulls_needed.append(attempt)
                        break
                    await asyncio.sleep(pause)
            except (httpx.HTTPError, KeyError, ValueError) as exc:  # counted, not fatal: the run goes on
                failed.append(type(exc).__name__)
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.sleep(max(0.0, warmup))  # the load is under way
        end = time.monotonic() + max(1.0, duration - 1.5)
        await asyncio.gather(*(probe(client, end) for _ in range(probes)))
    return {
        "samples": len(lags),
        "failed": len(failed),
        "p50_ms": round(percentile(lags, 50), 1) if lags else None,
        "p99_ms": round(percentile(lags, 99), 1) if lags else None,
        "first_pull": round(sum(1 for n in pulls_needed if n == 1) / len(pulls_needed), 2) if pulls_needed else None,
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "| database | scenario | req/s | p50 ms | p99 ms | ratio to /healthz | target | non-2xx |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for res in results:
        for name, row in res["scenarios"].items():
            if not isinstance(row, dict) or "rps" not in row:
                continue
            goal = {**TARGETS, **(SQLITE_TARGETS if res["database"] == "sqlite" else {})}
            target = f"≥ {goal[name]}" if name in goal else ""
            lines.append(
                f"| {res['database']} | {name} | {row['rps']:.0f} | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['ratio']} | {target} | {row['non_2xx']} |"
            )
        lines.append(
            f"| {res['database']} | peak memory per worker (MB) | "
            f"{', '.join(map(str, res['scenarios'].get('memory_peak_mb_per_worker', [])))} | | | | ≤ 250 | |"
        )
        lag = res["scenarios"].get("pull_lag")
        if lag:
            lines.append(
                f"| {res['database']} | pull lag (push 201 → visible in a pull, under push load; "
                f"{lag['samples']} samples, {lag['first_pull']:.0%} seen by the first pull) | | {lag['p50_ms']} | "
                f"{lag['p99_ms']} | | p99 ≤ 100 ms | |"
            )
        fixed = res["scenarios"].get("fixed_rate")
        if fixed:
            label = f"{fixed['systems']} systems × {fixed['rate_per_system']:g} req/s, open loop"
            for op in ("push", "pull", "ack", "all"):
                row = fixed[op]
                lines.append(
                    f"| {res['database']} | fixed rate ({label}): {op} | {row['rps']:.0f} | {row['p50_ms']} | "
                    f"{row['p99_ms']} | | p99 ≤ {FIXED_P99[res['database']]} ms | {row['failed']} |"
                )
            lag = fixed.get("pull_lag")
            if lag and lag["samples"]:
                lines.append(
                    f"| {res['database']} | pull lag under the fixed rate ({lag['samples']} samples, "
                    f"{lag['first_pull']:.0%} seen by the first pull) | | {lag['p50_ms']} | {lag['p99_ms']} | | "
                    f"p99 ≤ 100 ms | |"
                )
        audit = res.get("verify_audit")
        if audit:
            during = audit["probe_during"]
            lines.append(
                f"| {res['database']} | verify-audit, {audit['size']:,} links (ok: {audit['ok']}) | | | | | "
                f"{audit['seconds']} s (target < 10 s) | |"
            )
            for name in ("healthz", "read"):
                row, idle = during[name], audit["probe_before"][name]
                lines.append(
                    f"| {res['database']} | {name} during verify-audit (20/s; idle p99 {idle['p99_ms']} ms) | | "
                    f"{row['p50_ms']} | {row['p99_ms']} | | answers | {row['failed']} |"
                )
        if "push_audit_off" in res:
            on, off = res["scenarios"]["push"], res["push_audit_off"]
            lines.append(
                f"| {res['database']} | push, audit off | {off['rps']:.0f} | {off['p50_ms']} | "
                f"{off['p99_ms']} | {off['ratio']} | (audit on: {on['rps']:.0f} req/s) | {off['non_2xx']} |"
            )
        for stored, point in res.get("scale", {}).items():
            for name in ("push", "pull"):
                row = point[name]
                lines.append(
                    f"| {res['database']} | {name}, {int(stored):,} stored | {row['rps']:.0f} | "
                    f"{row['p50_ms']} | {row['p99_ms']} | {row['ratio']} | flat | {row['non_2xx']} |"
                )
    return "\n".join(lines) + "\n"


async def main(args: argparse.Namespace) -> list[dict]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    results = []
    for kind in ["postgresql", "sqlite"] if args.db == "both" else [args.db]:
        results.append(await run_database(kind, args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "bench.md").write_text(markdown(results))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--members", type=int, default=9000)
    parser.add_argument("--notices", type=int, default=200_000)
    parser.add_argument(
        "--pool", type=int, default=8, help="database connections per worker (more only queue in the database)"
    )
    parser.add_argument("--audit-compare", action="store_true", help="also push with the audit log off")
    parser.add_argument("--scale", action="store_true", help="also 10,000 vs 1,000,000 stored notices")
    parser.add_argument(
        "--fixed-rate-duration", type=int, default=20, help="seconds of the 31 committees' fixed-rate load (0: skip)"
    )
    parser.add_argument("--rate", type=float, default=5, help="requests per second of each committee's system")
    parser.add_argument(
        "--verify-audit",
        type=int,
        default=0,
        metavar="N",
        help="also time verify-audit over N more audit entries (1000000: ~3 min per database) while serving",
    )
    print(markdown(asyncio.run(main(parser.parse_args()))))
