"""Chains sealed before the faster canonical form still verify: the form is byte for byte json.dumps's."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

from asyncpg.pgproto.pgproto import UUID as DriverUUID

from app.services.audit import HASHED_FIELDS, _plain, _range_form, canonical_form

TEXTS = ["", 'a"b\\c', "Nguyễn Văn An", "\x00\x1f\u2028", "tab\there\n", "😀", "</script>", "Đ" * 200]
TEXTS += ["\x7f\x80\u2029\ufeff", "\\u0000", "\U0010ffff\ue000", "\b\f\r", "ǅ e\u0301 ﬁ"]


def _reference(values: list) -> str:
    """The canonical form as the sealer first wrote it."""
    fields = {k: _plain(v) for k, v in zip(HASHED_FIELDS, values, strict=True)}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _value(rng: random.Random):
    return rng.choice(
        [
            None,
            rng.randint(-(10**20), 10**20),
            rng.choice(TEXTS),
            True,
            False,
            1.5,
            datetime(2026, 11, 23, tzinfo=UTC) + timedelta(microseconds=rng.randint(0, 10**12)),
            datetime(2026, 1, 1, 7, tzinfo=timezone(timedelta(hours=7))),
            uuid.UUID(int=rng.getrandbits(128)),
            DriverUUID(str(uuid.UUID(int=rng.getrandbits(128)))),  # what asyncpg reads
            {"b": [1, None, "x"], "a": {"z": "Đ", "y": 2.0}, "ghi_chú": rng.choice(TEXTS)},
            [],
            {},
        ]
    )


def test_the_canonical_form_is_exactly_the_one_every_existing_chain_was_sealed_with():
    rng = random.Random(19)
    for _ in range(5000):
        values = [_value(rng) for _ in HASHED_FIELDS]
        assert canonical_form(values) == _reference(values)


def test_a_row_read_straight_from_the_driver_has_the_same_canonical_form():
    """Worker processes hash rows as the driver gives them (`read_links`: `details` as its stored JSON text, in
    PostgreSQL's or SQLite's spelling): the same text for every value."""
    rng = random.Random(23)
    for _ in range(5000):
        values = [_value(rng) for _ in HASHED_FIELDS]
        details = _plain(values[-1])
        stored = json.dumps(details, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))
        row = (0, 0, "", "", *values[:-1], stored)
        assert _range_form(row) == _reference(values)
