"""Measure the annual round over N synthetic members on PostgreSQL (default 475,000: the whole city).

    python bench/feedback_round.py [--members 475000]

Starts the service with 2 workers on a fresh database, generates the members, opens the round over HTTP, polls its
progress, and meanwhile keeps pushing and pulling notices to show that the round does not block them. Prints and
saves (bench/results/feedback_round.json) the time to completion and the latencies seen while it ran.
"""

import argparse
import asyncio
import json
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import (
    RESULTS,
    cli,
    free_port,
    fresh_pg_database,
    password_token,
    percentile,
    service_env,
    start_service,
    stop_service,
    wait_ready,
)


async def main(members: int) -> dict:
    url = await fresh_pg_database("mx_bench_round")
    data_dir = Path(tempfile.mkdtemp(prefix="mx-bench-"))
    env = service_env(url, data_dir, MX_DB_POOL_SIZE="10")
    cli(env, "init")
    t0 = time.perf_counter()
    cli(env, "generate-members", "--count", str(members))
    generated_in = time.perf_counter() - t0
    admin = cli(env, "create-user", "--org", "khoi-cqtp", "--username", "bench.khoi", "--role", "clerk")
    district = cli(env, "create-user", "--org", "ba-dinh", "--username", "bench.badinh", "--role", "clerk")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_service(env, port)
    try:
        await wait_ready(base, proc)
        khoi = {"Authorization": f"Bearer {await password_token(base, 'bench.khoi', admin['secret'])}"}
        ba_dinh = {"Authorization": f"Bearer {await password_token(base, 'bench.badinh', district['secret'])}"}
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            deadline = (date.today() + timedelta(days=30)).isoformat()
            started = time.perf_counter()
            r = await client.post("/api/v1/feedback-rounds", json={"year": 2026, "deadline": deadline}, headers=khoi)
            r.raise_for_status()
            round_id = r.json()["id"]
            latencies: dict[str, list[float]] = {"pull": [], "push": []}
            samples = []
            done = asyncio.Event()

            async def traffic() -> None:
                card = "20000000"  # a Ba Đình member (the generator assigns districts in turn)
                body = {
                    "kind": "violation.reported",
                    "member_card_no": card,
                    "payload": {"summary": "Kiểm tra tải", "observed_on": date.today().isoformat()},
                }
                while not done.is_set():
                    t = time.perf_counter()
                    await client.get("/api/v1/notices/inbox", params={"limit": 50}, headers=ba_dinh)
                    latencies["pull"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    await client.post("/api/v1/notices", json=body, headers=ba_dinh)
                    latencies["push"].append(time.perf_counter() - t)
                    await asyncio.sleep(0.05)

            load = asyncio.create_task(traffic())
            progress_errors = []
            while True:
                r = await client.get(f"/api/v1/feedback-rounds/{round_id}", headers=khoi)
                if r.status_code != 200:  # the progress over the whole city is heavy on a loaded machine: try again
                    progress_errors.append({"t": round(time.perf_counter() - started, 1), "status": r.status_code})
                    await asyncio.sleep(5)
                    continue
                progress = r.json()
                samples.append({"t": round(time.perf_counter() - started, 1), "processed": progress["processed"]})
                if progress["status"] != "running":
                    break
                await asyncio.sleep(5)
            # The server's own clock: from the round's creation to its completion.
            elapsed = (
                (
                    datetime.fromisoformat(progress["completed_at"]) - datetime.fromisoformat(progress["created_at"])
                ).total_seconds()
                if progress["completed_at"]
                else time.perf_counter() - started
            )
            done.set()
            await load
    finally:
        stop_service(proc)
    result = {
        "members": members, "generate_seconds": round(generated_in, 1), "round_seconds": round(elapsed, 1),
        "status": progress["status"], "requested": progress["totals"]["requested"],
        "skipped": progress["totals"]["skipped"], "processed": progress["processed"],
        "requests_per_second": round(progress["totals"]["requested"] / elapsed),
        "during_round_ms": {k: {"n": len(v), "p50": round(percentile(v, 50) * 1000, 1),
                                "p99": round(percentile(v, 99) * 1000, 1), "max": round(max(v, default=0) * 1000, 1)}
                            for k, v in latencies.items()},
        "progress_errors": progress_errors, "progress_samples": samples,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "feedback_round.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=475_000)
    out = asyncio.run(main(parser.parse_args().members))
    print(json.dumps({k: v for k, v in out.items() if k != "progress_samples"}, indent=2))
