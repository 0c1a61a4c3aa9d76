"""Documents with provenance: who supplied each one and answers for its accuracy; corrections; integrity."""

import base64
import hashlib
import json
import uuid
from pathlib import Path

from jwcrypto import jwk, jws

from app.infra.config import settings
from tests import files
from tests.exchange import add_member, introduction, pull_all, push, violation
from tests.helpers import ACCOUNTS, assert_problem

DOCS = "/api/v1/documents"


async def upload(party, content: bytes, name: str = "bien-ban.pdf", **fields):
    return await party.post(
        DOCS,
        files={"file": (name, content, "application/octet-stream")},
        data={k: v for k, v in fields.items() if v is not None},
    )


async def uploaded(party, content: bytes, name: str = "bien-ban.pdf", **fields) -> dict:
    r = await upload(party, content, name, **fields)
    assert r.status_code == 201, r.text
    return r.json()


async def test_an_officer_uploads_and_the_provenance_names_who_answers_for_it(party):
    officer = await party("khoi_officer")
    content = files.pdf("Quyết định kỷ luật")
    doc = await uploaded(officer, content, name="../../Quyết định: kỷ luật*.pdf", supplier_unit="Ban Tổ chức")
    assert doc["sha256"] == hashlib.sha256(content).hexdigest() and doc["size"] == len(content)
    assert doc["media_type"] == "application/pdf" and doc["supplier_org"] == "khoi-cqtp"
    assert doc["file_name"] == "Quyết định_ kỷ luật_.pdf" and doc["version"] == 1 and doc["receipt"]
    prov = (await officer.get(f"{DOCS}/{doc['id']}/provenance")).json()
    assert prov["supplier_org"] == "khoi-cqtp" and prov["supplier_unit"] == "Ban Tổ chức"
    assert prov["attested_by"]["full_name"] == "Nguyễn Thị Lan"
    assert prov["attested_by"]["position"] == "Phó Trưởng Ban Tổ chức"
    assert "chịu trách nhiệm về nội dung và tính chính xác" in prov["attestation"]
    assert prov["signature"] == {"status": "absent", "kid": None}
    assert [v["sha256"] for v in prov["versions"]] == [doc["sha256"]]


async def test_a_system_client_must_name_an_officer_of_its_own_committee(party):
    system = await party("ba_dinh_system")
    assert_problem(await upload(system, files.pdf()), 422, "attester_required")
    assert_problem(await upload(system, files.pdf(), attested_by="t.badinh.admin"), 422, "attester_not_officer")
    assert_problem(await upload(system, files.pdf(), attested_by="t.khoi.officer"), 422, "attester_not_officer")
    assert_problem(await upload(system, files.pdf(), attested_by="nobody"), 422, "attester_not_officer")
    doc = await uploaded(system, files.pdf(), attested_by=ACCOUNTS["ba_dinh_clerk"].login)
    prov = (await system.get(f"{DOCS}/{doc['id']}/provenance")).json()
    assert prov["attested_by"]["full_name"] == "Vũ Thị Mai"


async def test_the_type_is_checked_by_content_not_by_name(party):
    officer = await party("khoi_officer")
    for content, expected, name in [
        (files.png(), "image/png", "anh.png"),
        (files.jpeg(), "image/jpeg", "anh.JPG"),
        (files.text(), "text/plain", "ghi-chu.txt"),
        (files.docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "nhan-xet.docx"),
        (files.odt(), "application/vnd.oasis.opendocument.text", "nhan-xet.odt"),
    ]:
        doc = await uploaded(officer, content, name=name)
        assert doc["media_type"] == expected
        # The name's extension must agree with what the content is.
        assert_problem(await upload(officer, content, name="tai-lieu.pdf"), 415, "extension_mismatch")
    assert_problem(await upload(officer, files.exe(), name="bao-cao.pdf"), 415, "unsupported_document_type")
    assert_problem(await upload(officer, b"\x00\x01\x02binary" * 10, name="a.txt"), 415, "unsupported_document_type")
    assert_problem(await upload(officer, b"", name="rong.pdf"), 422, "empty_document")
    assert_problem(await officer.post(DOCS, data={"supplier_unit": "x"}), 422, "validation_error")


async def test_oversized_uploads_are_refused_and_nothing_is_stored(party):
    officer = await party("khoi_officer")
    big = b"%PDF-1.4\n" + b"0" * (settings.max_document_bytes + 10)
    assert_problem(await upload(officer, big), 413)
    blob_dir = Path(settings.blob_dir)
    stored = [p for p in blob_dir.rglob("*") if p.is_file() and "tmp" not in p.parts] if blob_dir.exists() else []
    assert all(p.stat().st_size < settings.max_document_bytes for p in stored)


async def test_identical_bytes_are_stored_once(party):
    officer = await party("khoi_officer")
    content = files.pdf("same")
    a = await uploaded(officer, content, name="a.pdf")
    b = await uploaded(officer, content, name="b.pdf")
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
    sha = a["sha256"]
    assert len(list(Path(settings.blob_dir).rglob(sha))) == 1


async def test_documents_travel_with_notices_and_only_the_parties_see_them(party):
    khoi = await party("khoi_officer")
    ba_dinh = await party("ba_dinh_system")
    outsider = await party("cau_giay_system")
    card = await add_member(khoi, "ba-dinh")
    content = files.pdf("giới thiệu")
    doc = await uploaded(khoi, content)
    # Before it travels, only the supplier sees it.
    assert_problem(await ba_dinh.get(f"{DOCS}/{doc['id']}"), 404, "document_not_found")
    notice = await push(khoi, {**introduction(card), "document_ids": [doc["id"]]})
    assert [d["sha256"] for d in notice["documents"]] == [doc["sha256"]]
    inbox, _ = await pull_all(ba_dinh)
    assert inbox[0]["documents"][0]["id"] == doc["id"]
    assert (await ba_dinh.get(f"{DOCS}/{doc['id']}")).status_code == 200
    r = await ba_dinh.get(f"{DOCS}/{doc['id']}/content")
    assert r.status_code == 200 and r.content == content
    assert r.headers["etag"] == f'"{doc["sha256"]}"'
    assert r.headers["repr-digest"] == "sha-256=:" + base64.b64encode(hashlib.sha256(content).digest()).decode() + ":"
    assert r.headers["content-type"] == "application/pdf"
    assert (
        await ba_dinh.get(f"{DOCS}/{doc['id']}/content", headers={"If-None-Match": r.headers["etag"]})
    ).status_code == 304
    for path in ("", "/content", "/provenance"):
        assert_problem(await outsider.get(f"{DOCS}/{doc['id']}{path}"), 404, "document_not_found")
    # Nobody attaches a document another committee supplied.
    theirs = await uploaded(ba_dinh, files.pdf(), attested_by=ACCOUNTS["ba_dinh_clerk"].login)
    r = await khoi.post("/api/v1/notices", json={**violation(card), "document_ids": [theirs["id"]]})
    assert_problem(r, 404, "document_not_found")
    r = await khoi.post("/api/v1/notices", json={**violation(card), "document_ids": [str(uuid.uuid4())]})
    assert_problem(r, 404, "document_not_found")


async def test_tampered_stored_bytes_are_detected_on_read(party):
    officer = await party("khoi_officer")
    doc = await uploaded(officer, files.pdf("nguyên bản"))
    path = next(Path(settings.blob_dir).rglob(doc["sha256"]))
    path.write_bytes(path.read_bytes() + b"% altered")
    assert_problem(await officer.get(f"{DOCS}/{doc['id']}/content"), 503, "content_integrity_failed")


async def test_corrections_supersede_without_overwriting_and_tell_every_recipient(party):
    khoi = await party("khoi_officer")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    original = files.pdf("bản gốc")
    v1 = await uploaded(khoi, original)
    carrier = await push(khoi, {**introduction(card), "document_ids": [v1["id"]]})
    fixed = files.pdf("bản đính chính")
    r = await khoi.post(
        f"{DOCS}/{v1['id']}/corrections", files={"file": ("bien-ban.pdf", fixed)}, data={"reason": "Sai ngày sinh hoạt"}
    )
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["supersedes"] == v1["id"] and v2["root_id"] == v1["id"]
    assert len(v2["correction_notices"]) == 1
    # The old version stays readable, marked as superseded.
    old = (await ba_dinh.get(f"{DOCS}/{v1['id']}")).json()
    assert old["superseded_by"] == v2["id"]
    assert (await ba_dinh.get(f"{DOCS}/{v1['id']}/content")).content == original
    # Ba Đình, which received v1, is told, and can read v2.
    inbox, _ = await pull_all(ba_dinh, kind="notice.corrected")
    assert len(inbox) == 1 and inbox[0]["thread_id"] == carrier["id"]
    assert inbox[0]["payload"]["document"] == {"supersedes": v1["id"], "document_id": v2["id"], "sha256": v2["sha256"]}
    assert (await ba_dinh.get(f"{DOCS}/{v2['id']}/content")).content == fixed
    prov = (await ba_dinh.get(f"{DOCS}/{v2['id']}/provenance")).json()
    assert [(v["version"], v["correction_reason"]) for v in prov["versions"]] == [(1, None), (2, "Sai ngày sinh hoạt")]
    # Only the supplier corrects, only the latest version, and a refused correction stores nothing.
    r = await ba_dinh.post(
        f"{DOCS}/{v2['id']}/corrections", files={"file": ("x.pdf", files.pdf())}, data={"reason": "không phải của tôi"}
    )
    assert_problem(r, 403, "not_supplier")
    r = await khoi.post(
        f"{DOCS}/{v1['id']}/corrections", files={"file": ("x.pdf", files.pdf())}, data={"reason": "bản cũ"}
    )
    assert_problem(r, 409, "not_latest")
    r = await khoi.post(f"{DOCS}/{v2['id']}/corrections", files={"file": ("x.pdf", files.pdf())})
    assert_problem(r, 422, "validation_error")
    prov = (await khoi.get(f"{DOCS}/{v2['id']}/provenance")).json()
    assert len(prov["versions"]) == 2


def _key_pair() -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-256")


def _detached(key: jwk.JWK, kid: str, sha256: str) -> str:
    token = jws.JWS(sha256.encode())
    token.add_signature(key, alg="ES256", protected=json.dumps({"alg": "ES256", "kid": kid}))
    header, _payload, signature = token.serialize(compact=True).split(".")
    return f"{header}..{signature}"


async def test_a_supplier_signature_is_verified_against_that_committees_registered_key(party):
    admin = await party("ba_dinh_admin")
    clerk = await party("ba_dinh_clerk")
    key = _key_pair()
    public = json.loads(key.export_public())
    r = await admin.post("/api/v1/supplier-keys", json={"jwk": {**public, "kid": "ba-dinh-2026"}})
    assert r.status_code == 201, r.text
    assert_problem(await clerk.post("/api/v1/supplier-keys", json={"jwk": public}), 403)
    assert_problem(
        await admin.post("/api/v1/supplier-keys", json={"jwk": json.loads(key.export_private())}), 422, "invalid_key"
    )
    content = files.pdf("ký số")
    sha = hashlib.sha256(content).hexdigest()
    doc = await uploaded(clerk, content, signature=_detached(key, "ba-dinh-2026", sha))
    prov = (await clerk.get(f"{DOCS}/{doc['id']}/provenance")).json()
    assert prov["signature"] == {"status": "verified", "kid": "ba-dinh-2026"}
    # A signature over other bytes, an unknown key, and a valid signature by another committee's key all fail.
    other = hashlib.sha256(b"other").hexdigest()
    assert_problem(
        await upload(clerk, files.pdf(), signature=_detached(key, "ba-dinh-2026", other)), 422, "signature_mismatch"
    )
    assert_problem(await upload(clerk, content, signature=_detached(key, "nope", sha)), 422, "signature_key_unknown")
    khoi_admin = await party("khoi_admin")
    khoi_key = _key_pair()
    await khoi_admin.post(
        "/api/v1/supplier-keys", json={"jwk": {**json.loads(khoi_key.export_public()), "kid": "khoi-2026"}}
    )
    assert_problem(
        await upload(clerk, content, signature=_detached(khoi_key, "khoi-2026", sha)), 422, "signature_key_unknown"
    )
    assert_problem(await upload(clerk, content, signature="not-a-jws"), 422, "signature_invalid")
    # Revoked keys verify nothing new.
    assert (await admin.delete("/api/v1/supplier-keys/ba-dinh-2026")).json()["revoked_at"]
    assert_problem(
        await upload(clerk, content, signature=_detached(key, "ba-dinh-2026", sha)), 422, "signature_key_unknown"
    )


async def test_notices_and_receipts_verify_with_another_jose_library_and_the_jwks(client, party):
    khoi = await party("khoi_officer")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    doc = await uploaded(khoi, files.pdf("kèm theo"))
    sent = await push(khoi, {**introduction(card), "document_ids": [doc["id"]]})
    keys = jwk.JWKSet.from_json((await client.get("/.well-known/jwks.json")).text)

    def verified(compact: str, typ: str) -> dict:
        token = jws.JWS()
        token.deserialize(compact)
        assert token.jose_header["typ"] == typ and token.jose_header["alg"] == "ES256"
        token.verify(keys.get_key(token.jose_header["kid"]), alg="ES256")
        return json.loads(token.payload)

    # What Ba Đình received, as the service signed it when the notice was stored.
    received = (await ba_dinh.get(f"/api/v1/notices/{sent['id']}")).json()
    content = verified(received["signature"], "mx-notice+jws")
    assert (
        content["id"] == sent["id"] and content["sender_org"] == "khoi-cqtp" and content["recipient_org"] == "ba-dinh"
    )
    assert content["payload"] == received["payload"] and content["member_card_no"] == card
    assert content["documents"] == [{"id": doc["id"], "sha256": doc["sha256"]}]
    # The sender's receipts for the notice and the document.
    notice_receipt = verified(sent["receipt"], "mx-receipt+jws")
    assert notice_receipt["id"] == sent["id"] and notice_receipt["supplied_by"] == "t.khoi.officer"
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert notice_receipt["sha256"] == hashlib.sha256(canonical).hexdigest()
    doc_receipt = verified(doc["receipt"], "mx-receipt+jws")
    assert doc_receipt["sha256"] == doc["sha256"] and doc_receipt["supplier_org"] == "khoi-cqtp"
    # A signature does not survive a change of content.
    token = jws.JWS()
    token.deserialize(received["signature"])
    header, _payload, sig = received["signature"].split(".")
    forged = base64.urlsafe_b64encode(canonical.replace(b"khoi-cqtp", b"ba-dinh")).rstrip(b"=").decode()
    bad = jws.JWS()
    bad.deserialize(f"{header}.{forged}.{sig}")
    try:
        bad.verify(keys.get_key(token.jose_header["kid"]), alg="ES256")
        raise AssertionError("a forged payload verified")
    except jws.InvalidJWSSignature:
        pass


async def test_uploads_are_idempotent_with_a_key(party):
    officer = await party("khoi_officer")
    content = files.pdf("idempotent")
    key = {"Idempotency-Key": "upload-" + uuid.uuid4().hex}
    first = await officer.post(DOCS, files={"file": ("a.pdf", content)}, headers=key)
    again = await officer.post(DOCS, files={"file": ("a.pdf", content)}, headers=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await officer.post(DOCS, files={"file": ("a.pdf", files.pdf("khác"))}, headers=key)
    assert_problem(other, 422, "idempotency_key_reused")
