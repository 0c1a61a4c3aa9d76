"""Bulk data for the benchmark: notices between the Khối and the districts about the synthetic members.

Filler notices carry a fixed placeholder signature: they exist for volume (index depth, page reads), and
signing hundreds of thousands of them would only slow the set-up.
"""

import asyncio
import json
import sys
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

KINDS = ["violation.reported", "info.requested", "discipline.decided", "member.introduced"]


def _rows(members: list[tuple[str, str]], count: int, start: int) -> list[tuple]:
    now = datetime.now(UTC) - timedelta(days=30)
    rows = []
    for i in range(start, start + count):
        card, district = members[i % len(members)]
        up = (i // len(members)) % 3 == 0  # every third pass over the members goes from the district to the Khối
        notice_id = uuid.uuid4()
        kind = KINDS[i % len(KINDS)]
        payload = json.dumps({"summary": "Dữ liệu nền cho đo hiệu năng", "observed_on": date.today().isoformat()})
        rows.append(
            (
                notice_id,
                kind,
                district if up else "khoi-cqtp",
                "khoi-cqtp" if up else district,
                card,
                notice_id,
                payload,
                "sent",
                now + timedelta(seconds=i),
                "bench-filler",
            )
        )
    return rows


# Loaded notices get their positions at once, as the service's sequencer would give them (in seq order).
POSITION_LOADED = (
    "UPDATE notices SET position = head.top + numbered.n FROM "
    "(SELECT coalesce(max(position), 0) AS top FROM notices) AS head, "
    "(SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM notices WHERE position IS NULL) AS numbered "
    "WHERE notices.seq = numbered.seq"
)


async def load_notices(database_url: str, count: int) -> int:
    """COPY `count` notices into PostgreSQL."""
    conn = await asyncpg.connect(database_url)
    try:
        members = [
            tuple(r)
            for r in await conn.fetch("SELECT party_card_no, residence_org FROM members ORDER BY party_card_no")
        ]
        columns = [
            "id",
            "kind",
            "sender_org",
            "recipient_org",
            "member_card_no",
            "thread_id",
            "payload",
            "status",
            "created_at",
            "signature",
        ]
        chunk = 50_000
        for start in range(0, count, chunk):
            await conn.copy_records_to_table(
                "notices", records=_rows(members, min(chunk, count - start), start), columns=columns
            )
        await conn.execute(POSITION_LOADED)
        await conn.execute("ANALYZE notices")
    finally:
        await conn.close()
    return count


def load_notices_sqlite(path: str, count: int) -> int:
    """The same rows, inserted into a SQLite file."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        members = db.execute("SELECT party_card_no, residence_org FROM members ORDER BY party_card_no").fetchall()
        chunk = 50_000
        for start in range(0, count, chunk):
            rows = [
                (r[0].hex, r[1], r[2], r[3], r[4], r[5].hex, r[6], r[7], r[8].strftime("%Y-%m-%d %H:%M:%S.%f"), r[9])
                for r in _rows(members, min(chunk, count - start), start)
            ]
            db.executemany(
                "INSERT INTO notices (id, kind, sender_org, recipient_org, member_card_no, thread_id, "
                "payload, status, created_at, signature) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        db.execute(POSITION_LOADED)
        db.commit()
        db.execute("ANALYZE")
    finally:
        db.close()
    return count


if __name__ == "__main__":
    print(asyncio.run(load_notices(sys.argv[1], int(sys.argv[2]))))
