"""One canonical signed content for every notice: a district verifies what a round sent exactly as it verifies a
push, with the service's published keys, and the signed bytes are the service's one canonical form."""

import asyncio
import json
import uuid
from datetime import datetime, timedelta

from jwcrypto import jwk, jws
from sqlalchemy import select

from app.infra.clock import today
from app.infra.db import db
from app.models.notice import Notice
from app.services.signed import content_of, signed_content
from tests.exchange import add_member, iso, pull_all, push, violation

ROUNDS = "/api/v1/feedback-rounds"


async def _verified_payload(client, notice: dict) -> bytes:
    """What a district does: check the JWS with the JWKS, read the signed content."""
    keys = jwk.JWKSet.from_json((await client.get("/.well-known/jwks.json")).text)
    token = jws.JWS()
    token.deserialize(notice["signature"])
    assert token.jose_header["typ"] == "mx-notice+jws" and token.jose_header["alg"] == "ES256"
    token.verify(keys.get_key(token.jose_header["kid"]), alg="ES256")
    return token.payload


def _as_received(content: dict, notice: dict) -> None:
    """The signed content names exactly the notice the district holds."""
    for field in ("id", "kind", "sender_org", "recipient_org", "member_card_no", "thread_id", "payload", "due_date"):
        assert content[field] == notice[field], field
    assert content["in_reply_to"] is None and content["supersedes"] is None and content["documents"] == []
    assert datetime.fromisoformat(content["created_at"]) == datetime.fromisoformat(notice["created_at"])


async def _canonical(notice_id: str) -> bytes:
    async with db.sessions() as session:
        stored = (await session.execute(select(Notice).where(Notice.id == uuid.UUID(notice_id)))).scalar_one()
    return signed_content(content_of(stored), [])


async def test_a_rounds_request_verifies_against_the_one_canonical_content(client, party):
    khoi = await party("khoi_officer")
    ba_dinh = await party("ba_dinh_system")
    unit = f"so-kiem-thu-{uuid.uuid4().hex[:8]}"
    card = await add_member(
        khoi, "ba-dinh", workplace_unit_code=unit, residence_status="accepted", residence_cell="Chi bộ số 7"
    )
    deadline = iso(today() + timedelta(days=20))
    r = await khoi.post(ROUNDS, json={"year": today().year, "deadline": deadline, "units": [unit]})
    assert r.status_code == 201, r.text
    round_id = r.json()["id"]
    for _ in range(100):  # the requests are made in the background
        if (await khoi.get(f"{ROUNDS}/{round_id}")).json()["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    assert (await khoi.get(f"{ROUNDS}/{round_id}")).json()["totals"]["requested"] == 1

    inbox, _ = await pull_all(ba_dinh, kind="feedback.requested", member=card)
    (request,) = inbox
    signed = await _verified_payload(ba_dinh, request)
    _as_received(json.loads(signed), request)
    assert signed == await _canonical(request["id"]), "a round signs the same canonical form as a push"

    # A push of the same service, for comparison: the same verification, the same canonical form.
    pushed = await push(khoi, violation(card))
    received = (await ba_dinh.get(f"/api/v1/notices/{pushed['id']}")).json()
    signed = await _verified_payload(ba_dinh, received)
    _as_received(json.loads(signed), received)
    assert signed == await _canonical(pushed["id"])
