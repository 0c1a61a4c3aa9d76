"""The load the committees really make: 31 systems (the Khối and 30 districts), each at a fixed rate, open loop.

Each system sends `rate` requests per second on a fixed timetable, cycling through push, pull, ack, push, pull
(2 pushes, 2 pulls and 1 acknowledgement per second at 5 req/s). A request is sent at its scheduled time whether
or not the earlier ones have answered (a new connection is opened when none is free), and its latency is measured
from the time it was *scheduled*: a slow answer therefore counts for every request that had to wait behind it, and
nothing is hidden by coordinated omission (wrk and `hey -q` wait for an answer before sending the next request).

- push: a violation report about one of the system's own members (a district's residents; any member for the
  Khối), each with its own Idempotency-Key;
- pull: the system's inbox from its latest cursor, 50 at most (an incremental pull, as a district system does);
- ack: a notice of its inbox (from the newest pulled, else from the stored ones).

While it runs, one probe measures the pull lag (push 201 → visible in a pull) under this load.
"""

import asyncio
import base64
import collections
import json
import secrets
import time
from datetime import date

import asyncpg
import httpx

from bench.common import client_token, percentile

MIX = ("push", "pull", "ack", "push", "pull")


def cursor_after(position: int) -> str:
    raw = json.dumps([position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def party_data(db_url: str, sqlite_path: str | None) -> dict[str, dict]:
    """For each party: members it may push about, its newest stored inbox notices, and its inbox's last position."""
    member_sql = (
        "SELECT residence_org, party_card_no FROM members WHERE residence_status='accepted' ORDER BY party_card_no"
    )
    inbox_sql = (
        "SELECT recipient_org, id, position FROM notices WHERE position IS NOT NULL "
        "ORDER BY recipient_org, position DESC"
    )
    if sqlite_path:
        import sqlite3
        import uuid

        con = sqlite3.connect(sqlite_path)
        members = con.execute(member_sql).fetchall()
        inbox = [(r[0], str(uuid.UUID(r[1])), r[2]) for r in con.execute(inbox_sql)]
        con.close()
    else:
        conn = await asyncpg.connect(db_url)
        members = [tuple(r) for r in await conn.fetch(member_sql)]
        inbox = [(r[0], str(r[1]), r[2]) for r in await conn.fetch(inbox_sql)]
        await conn.close()
    out: dict[str, dict] = collections.defaultdict(lambda: {"cards": [], "inbox": [], "last": 0})
    for org, card in members:
        out[org]["cards"].append(card)
        if len(out["khoi-cqtp"]["cards"]) < 2000:
            out["khoi-cqtp"]["cards"].append(card)
    for org, notice_id, position in inbox:
        party = out[org]
        if len(party["inbox"]) < 2000:
            party["inbox"].append(notice_id)
        party["last"] = max(party["last"], position)
    return out


async def _tokens(base: str, clients: list[dict]) -> dict[str, str]:
    return {c["org"]: await client_token(base, c) for c in clients}


async def run(
    base: str, clients: list[dict], parties: dict[str, dict], duration: float, rate: float, lag_probe=None
) -> dict:
    """Drive every system at `rate` req/s for `duration` seconds; p50/p99 per operation (from scheduled time)."""
    tokens = await _tokens(base, clients)
    systems = [org for org in tokens if parties[org]["cards"]]
    latencies: dict[str, list[float]] = {op: [] for op in MIX}
    failures: collections.Counter = collections.Counter()
    scheduled: collections.Counter = collections.Counter()
    late: list[float] = []  # how late the client itself sent requests (its own overload would show here)
    today = date.today().isoformat()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def request(org: str, op: str, due: float) -> None:
            party = parties[org]
            auth = {"Authorization": f"Bearer {tokens[org]}"}
            late.append(time.monotonic() - due)
            try:
                if op == "push":
                    card = party["cards"][secrets.randbelow(len(party["cards"]))]
                    body = {
                        "kind": "violation.reported",
                        "member_card_no": card,
                        "payload": {"summary": "Kiểm tra tải", "observed_on": today, "severity": "low"},
                    }
                    headers = {**auth, "Idempotency-Key": "fr-" + secrets.token_hex(8)}
                    r = await client.post("/api/v1/notices", json=body, headers=headers)
                elif op == "pull":
                    params = {"limit": 50, "cursor": party["cursor"]}
                    r = await client.get("/api/v1/notices/inbox", params=params, headers=auth)
                    if r.status_code == 200:
                        page = r.json()
                        party["cursor"] = page["next_cursor"] or party["cursor"]
                        party["fresh"].extend(n["id"] for n in page["items"])
                else:
                    pool = party["fresh"] or party["inbox"]
                    notice_id = pool.pop() if pool else None
                    if notice_id is None:
                        scheduled[op] -= 1  # nothing left to acknowledge: not a request
                        return
                    r = await client.post(f"/api/v1/notices/{notice_id}/ack", headers=auth)
                ok = r.status_code < 300
            except httpx.HTTPError:
                ok = False
            latencies[op].append((time.monotonic() - due) * 1000)
            if not ok:
                failures[op] += 1

        tasks: set[asyncio.Task] = set()

        async def system(index: int, org: str, start: float, end: float) -> None:
            party = parties[org]
            party.setdefault("cursor", cursor_after(party["last"]))
            party.setdefault("fresh", [])
            interval = 1.0 / rate
            due, k = start + index * interval / len(systems), index  # spread the systems over each interval
            while due < end:
                # Always yield: behind schedule, the answers still have to be read.
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                scheduled[MIX[k % len(MIX)]] += 1
                task = asyncio.create_task(request(org, MIX[k % len(MIX)], due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                due, k = due + interval, k + 1

        start = time.monotonic() + 0.5
        end = start + duration
        runners = [system(i, org, start, end) for i, org in enumerate(systems)]
        if lag_probe is not None:
            results = await asyncio.gather(*runners, lag_probe(start, end))
            lag = results[-1]
        else:
            await asyncio.gather(*runners)
            lag = None
        if tasks:
            await asyncio.wait(tasks, timeout=30)
            for task in tasks:  # still unanswered 30 s after the end: counted as failed, never as fast
                task.cancel()

    out: dict = {
        "systems": len(systems),
        "rate_per_system": rate,
        "duration_s": duration,
        "client_late_p99_ms": round(percentile(late, 99) * 1000, 1),
    }
    for op, values in latencies.items():
        out[op] = {
            "requests": len(values),
            "rps": round(len(values) / duration, 1),
            "p50_ms": round(percentile(values, 50), 1),
            "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values, default=0), 1),
            "failed": failures[op] + scheduled[op] - len(values),
            "scheduled": scheduled[op],
        }
    every = [v for values in latencies.values() for v in values]
    out["all"] = {
        "requests": len(every),
        "rps": round(len(every) / duration, 1),
        "p50_ms": round(percentile(every, 50), 1),
        "p99_ms": round(percentile(every, 99), 1),
        "max_ms": round(max(every, default=0), 1),
        "failed": sum(failures.values()) + sum(scheduled.values()) - len(every),
        "scheduled": sum(scheduled.values()),
    }
    if lag is not None:
        out["pull_lag"] = lag
    return out
