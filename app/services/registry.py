"""Registry editions: a re-organisation of the committee registry, planned and applied as data (README, "Registry
editions").

An edition adds or updates committees (they start on `effective`) and retires others (they end on `effective`),
each with its successors. Applying it, in one transaction: the committees change; every member of a retired
committee goes to its successor (with several successors, by the member's ward on the residence side or workplace
unit on the workplace side; a member the mapping does not name stays where it is and is listed, never guessed);
every open notice addressed to a retired committee about a re-assigned member passes to the successor as a signed
`notice.transferred` in the same thread; the retired committees' webhook subscriptions stop; their accounts stop
working at `valid_to` (app.services.auth). The same edition again changes nothing; the same id with other content
is refused. Members are moved with set-based statements (one pass over the members per side, whatever the number
of committees), never row by row; the open notices, few beside them, are read through the recipients' index."""

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from app.errors import Conflict, Unprocessable
from app.infra.clock import today
from app.infra.config import settings
from app.infra.db import Session
from app.models.audit import Outcome
from app.models.base import utcnow
from app.models.notice import NoticeKind
from app.models.organization import Organization
from app.models.registry import RegistryEdition
from app.principal import Principal
from app.repositories import documents as document_rows
from app.repositories import organizations as org_rows
from app.repositories import registry as rows
from app.schemas.registry import (
    Edition,
    EditionApplied,
    EditionPlan,
    Reassignment,
    RetiredAccount,
    RetiredCommittee,
    StoppedSubscription,
    UnmappableMember,
)
from app.services import audit, notices, policy
from app.services.notices import ANSWER_KINDS, Transfer
from app.text import fold

# Reminders are not passed on: the request they remind of is, and the successor is reminded of that one.
NOT_TRANSFERRED = [NoticeKind.feedback_reminder.value]
SAMPLE = 5
TRANSFER_BATCH = 500
RETIRED_REASON = "organization_retired"
CLI_ACTOR = "member-exchange"  # the audit entry's actor for the operator command
_COMMITTEE_FIELDS = ("kind", "side", "name", "short_name", "unit", "area", "parent_code")


@functools.cache
def shipped_example() -> dict:
    """The sample edition shipped in app/data/editions (an example, not the official list): the API's example."""
    folder = resources.files("app.data").joinpath("editions")
    first = min((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)
    return json.loads(first.read_text(encoding="utf-8"))


def canonical(edition: Edition) -> dict:
    """The edition as applied: validated, NFC text, every field present; what its SHA-256 is taken over."""
    return edition.model_dump(mode="json")


def digest(edition: Edition) -> str:
    text = json.dumps(canonical(edition), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class _Retirement:
    """A retired committee, its side, its successors and (several successors) the mapping key → successor."""

    code: str
    side: str | None
    successors: list[str]
    mapping: dict[str, str] | None = None
    keys_of: dict[str, list[str]] = field(default_factory=dict)

    def keys(self, successor: str) -> list[str] | None:
        """The mapping keys that lead to `successor` (None: every member, the only successor)."""
        return None if self.mapping is None else self.keys_of.get(successor, [])


def _invalid(detail: str, *, code: str) -> Unprocessable:
    return Unprocessable(detail, code=code)


def _validate(edition: Edition, registry: dict[str, Organization]) -> tuple[list[_Retirement], list[str], list[str]]:
    """The edition checked against the registry: (retirements, codes added, codes updated); 422 with a stable
    code otherwise."""
    new = {c.code: c for c in edition.committees}
    if len(new) != len(edition.committees):
        dup = next(c.code for c in edition.committees if sum(x.code == c.code for x in edition.committees) > 1)
        raise _invalid(f"Mã tổ chức '{dup}' xuất hiện hai lần trong 'committees'.", code="edition_duplicate_code")
    retiring = {r.code: r for r in edition.retire}
    if len(retiring) != len(edition.retire):
        dup = next(r.code for r in edition.retire if sum(x.code == r.code for x in edition.retire) > 1)
        raise _invalid(f"Mã tổ chức '{dup}' xuất hiện hai lần trong 'retire'.", code="edition_duplicate_code")
    both = sorted(set(new) & set(retiring))
    if both:
        raise _invalid(
            f"Tổ chức '{both[0]}' vừa được thêm/cập nhật vừa bị giải thể trong cùng ấn bản.",
            code="edition_duplicate_code",
        )

    added, updated = [], []
    for code, committee in new.items():
        existing = registry.get(code)
        if committee.parent_code and committee.parent_code not in registry and committee.parent_code not in new:
            raise _invalid(
                f"Tổ chức cấp trên '{committee.parent_code}' của '{code}' không có trong danh mục hay ấn bản.",
                code="edition_unknown_committee",
            )
        if existing is None:
            added.append(code)
            continue
        if existing.valid_to is not None:
            raise _invalid(
                f"Tổ chức '{code}' đã giải thể từ {existing.valid_to.isoformat()}; ấn bản không sửa được nữa.",
                code="edition_already_retired",
            )
        side = committee.side.value if committee.side else None
        if existing.side != side:
            raise _invalid(
                f"Không đổi được bên trao đổi của tổ chức đang có '{code}' ({existing.side} → {side}); "
                "hãy giải thể nó và lập tổ chức mới.",
                code="edition_side_mismatch",
            )
        values = committee.model_dump(mode="json")
        if any(getattr(existing, f) != values[f] for f in _COMMITTEE_FIELDS):
            updated.append(code)

    retirements = []
    for code, r in retiring.items():
        org = registry.get(code)
        if org is None:
            raise _invalid(
                f"Không có tổ chức mã '{code}' trong danh mục để giải thể.", code="edition_unknown_committee"
            )
        if org.valid_to is not None:
            raise _invalid(
                f"Tổ chức '{code}' đã giải thể từ {org.valid_to.isoformat()}.", code="edition_already_retired"
            )
        if org.operator:
            raise _invalid(
                f"Không giải thể được '{code}': tổ chức này vận hành hệ thống (áp dụng ấn bản, quản trị tài khoản).",
                code="edition_retires_operator",
            )
        if len(set(r.successors)) != len(r.successors):
            raise _invalid(f"Danh sách tổ chức kế tục của '{code}' có mã trùng nhau.", code="edition_duplicate_code")
        for successor in r.successors:
            if successor == code:
                raise _invalid(f"Tổ chức '{code}' không thể kế tục chính nó.", code="edition_cycle")
            if successor in retiring:
                continue  # a chain or a cycle: told apart below
            target = new.get(successor) or registry.get(successor)
            if target is None:
                raise _invalid(
                    f"Tổ chức kế tục '{successor}' (của '{code}') không có trong danh mục hay trong 'committees'.",
                    code="edition_unknown_successor",
                )
            if successor not in new and registry[successor].valid_to is not None:
                raise _invalid(
                    f"Tổ chức kế tục '{successor}' (của '{code}') đã giải thể từ "
                    f"{registry[successor].valid_to.isoformat()}.",
                    code="edition_unknown_successor",
                )
            target_side = (target.side.value if target.side else None) if successor in new else target.side
            if target_side != org.side:
                raise _invalid(
                    f"'{successor}' ở bên '{target_side}', '{code}' ở bên '{org.side}': tổ chức kế tục phải cùng bên "
                    "trao đổi.",
                    code="edition_side_mismatch",
                )
        retirements.append(_mapped(code, org.side, r.successors, r.wards, r.units))
    _check_chains(retiring)
    return retirements, added, updated


def _check_chains(retiring: dict) -> None:
    """A successor retired by the same edition: a cycle (A → B → A) or a chain (A → B → C), both refused."""
    graph = {code: [s for s in r.successors if s in retiring] for code, r in retiring.items()}
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            node = stack.pop()
            if node == start:
                raise _invalid(f"Vòng kế tục: '{start}' lại là tổ chức kế tục của chính nó.", code="edition_cycle")
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, []))
    for code, successors in graph.items():
        if successors:
            raise _invalid(
                f"'{successors[0]}' kế tục '{code}' nhưng cũng bị giải thể trong ấn bản này; hãy ghi thẳng tổ chức "
                "kế tục cuối cùng.",
                code="edition_successor_retired",
            )


def _mapped(code: str, side: str | None, successors: list[str], wards: dict, units: dict) -> _Retirement:
    """The retirement with its mapping checked: one successor takes everyone; several need the mapping of the
    committee's side (wards compared folded: diacritics and case do not matter)."""
    r = _Retirement(code=code, side=side, successors=list(successors))
    if len(successors) == 1:
        if wards or units:
            raise _invalid(
                f"'{code}' có một tổ chức kế tục: mọi đảng viên chuyển sang đó; không ghi bảng 'wards'/'units'.",
                code="edition_mapping_invalid",
            )
        return r
    own, other, own_name, other_name = (
        (units, wards, "units", "wards") if side == "workplace" else (wards, units, "wards", "units")
    )
    if side is None:
        if wards or units:
            raise _invalid(
                f"'{code}' không thuộc bên nào của trao đổi: không có đảng viên.", code="edition_mapping_invalid"
            )
        r.mapping = {}
        return r
    if other:
        raise _invalid(
            f"'{code}' ở bên '{side}': đảng viên được chia theo '{own_name}', không theo '{other_name}'.",
            code="edition_mapping_invalid",
        )
    if not own:
        raise _invalid(
            f"'{code}' có {len(successors)} tổ chức kế tục: cần bảng '{own_name}' cho biết mỗi đảng viên về đâu.",
            code="edition_mapping_invalid",
        )
    mapping: dict[str, str] = {}
    for raw, successor in own.items():
        key = fold(raw) if side == "residence" else raw
        if successor not in successors:
            raise _invalid(
                f"'{raw}' của '{code}' chuyển sang '{successor}', không phải tổ chức kế tục đã ghi của '{code}'.",
                code="edition_mapping_invalid",
            )
        if mapping.get(key, successor) != successor:
            raise _invalid(
                f"'{raw}' của '{code}' được ghi hai lần (không kể dấu, hoa thường) với hai tổ chức kế tục khác nhau.",
                code="edition_mapping_invalid",
            )
        mapping[key] = successor
    r.mapping = mapping
    for key, successor in mapping.items():
        r.keys_of.setdefault(successor, []).append(key)
    return r


def _moves(retirements: list[_Retirement], side: str) -> list[rows.Move]:
    """The moves of one side: (retired committee, the mapping keys to a successor or None for all, successor)."""
    moves = []
    for r in retirements:
        if r.side != side:
            continue
        for successor in r.successors:
            keys = r.keys(successor)
            if keys is None or keys:
                moves.append((r.code, keys, successor))
    return moves


SIDES = ("workplace", "residence")


def _successor_of(r: _Retirement, place: rows.MemberPlace) -> str | None:
    """The successor the edition gives a member of `r` (the rule of app.repositories.registry's moves, for one
    member); None: the member stays (not mapped, or no longer with `r`)."""
    if r.side is None:
        return None
    holder = place.workplace_org if r.side == "workplace" else place.residence_org
    if holder != r.code:
        return None
    if r.mapping is None:
        return r.successors[0]
    return r.mapping.get(place.workplace_unit_code if r.side == "workplace" else place.ward_folded)


async def _plan(
    *,
    session: Session,
    edition: Edition,
    sha: str,
    retirements: list[_Retirement],
    added: list[str],
    updated: list[str],
) -> tuple[EditionPlan, list[tuple[int, str]]]:
    """What applying the edition changes now, and (seq, successor) of each open notice that passes on: counted in
    SQL, a few statements per side, nothing written."""
    codes = [r.code for r in retirements]
    counts: dict[tuple[str, str], int] = {}
    samples: dict[tuple[str, str], list[str]] = {}
    unmappable: list[UnmappableMember] = []
    for side in SIDES:
        if not any(r.side == side for r in retirements):
            continue
        moves = _moves(retirements, side)
        counts |= await rows.member_counts(session, side=side, moves=moves)
        samples |= await rows.member_samples(session, side=side, moves=moves, limit=SAMPLE)
        mapped = [r.code for r in retirements if r.side == side and r.mapping is not None]
        for card, name, org, ward, unit in await rows.unmapped_members(session, side=side, moves=moves, orgs=mapped):
            residence = side == "residence"
            unmappable.append(
                UnmappableMember(
                    party_card_no=card,
                    full_name=name,
                    committee=org,
                    side=side,
                    residence_ward=ward if residence else None,
                    workplace_unit_code=None if residence else unit,
                )
            )
    # Open notices are few beside the members: read them, and their members by primary key.
    opened = await rows.open_notices(session, orgs=codes, answer_kinds=ANSWER_KINDS, excluded=NOT_TRANSFERRED)
    places = await rows.member_places(session, [card for _, card, _ in opened])
    by_code = {r.code: r for r in retirements}
    passing: Counter[tuple[str, str]] = Counter()
    pending = []
    for seq, card, org in opened:
        successor = _successor_of(by_code[org], places[card]) if card in places else None
        if successor is not None:
            passing[org, successor] += 1
            pending.append((seq, successor))
    reassignments = [
        Reassignment(
            from_org=r.code,
            to_org=s,
            side=r.side,
            members=counts.get((r.code, s), 0),
            sample=samples.get((r.code, s), []),
            notices=passing.get((r.code, s), 0),
        )
        for r in retirements
        if r.side is not None
        for s in r.successors
    ]
    accounts = await rows.accounts_of(session, codes) if codes else []
    subscriptions = await rows.active_subscriptions_of(session, codes) if codes else []
    plan = EditionPlan(
        edition=edition.edition, sha256=sha, effective=edition.effective, description=edition.description,
        example=edition.example, already_applied=False, added=added, updated=updated,
        retired=[RetiredCommittee(code=r.code, side=r.side, successors=r.successors) for r in retirements],
        members_reassigned=sum(x.members for x in reassignments), reassignments=reassignments, unmappable=unmappable,
        notices_transferred=sum(x.notices for x in reassignments),
        notices_left=len(opened) - sum(x.notices for x in reassignments),
        accounts_retired=[RetiredAccount(login=a, kind=k, org_code=o) for a, k, o in accounts],
        subscriptions_stopped=[StoppedSubscription(id=str(i), org_code=o, url=u) for i, o, u in subscriptions],
    )  # fmt: skip
    return plan, pending


def _applied(row: RegistryEdition, *, already: bool) -> EditionApplied:
    return EditionApplied(
        **{**row.summary, "already_applied": already}, applied_at=row.applied_at, applied_by=row.applied_by
    )


async def plan(
    *, session: Session, principal: Principal | None, edition: Edition, long_running: bool = False
) -> EditionPlan:
    """What applying the edition would change now (a pure read); `already_applied` when it was applied."""
    if principal is not None:
        policy.require_operator(
            principal, "Chỉ tổ chức vận hành hệ thống lập và áp dụng ấn bản danh mục.", code="operator_only"
        )
    if long_running:
        await rows.allow_long_statements(session)
    sha = digest(edition)
    existing = await rows.edition(session, edition.edition)
    if existing is not None:
        if existing.sha256 != sha:
            raise _conflict(edition.edition)
        return EditionPlan(**_applied(existing, already=True).model_dump(exclude={"applied_at", "applied_by"}))
    registry = await org_rows.by_code(session)
    retirements, added, updated = _validate(edition, registry)
    plan, _ = await _plan(
        session=session, edition=edition, sha=sha, retirements=retirements, added=added, updated=updated
    )
    return plan


def _conflict(edition_id: str) -> Conflict:
    return Conflict(
        f"Ấn bản '{edition_id}' đã được áp dụng với nội dung khác; một ấn bản mới cần mã mới.", code="edition_conflict"
    )


async def apply(
    *,
    session: Session,
    principal: Principal | None,
    edition: Edition,
    long_running: bool = False,
) -> tuple[EditionApplied, bool]:
    """Apply the edition in the session's transaction (the caller commits, with its one audit entry); returns
    (what it changed, whether it changed anything now). `principal` None: the operator command."""
    if principal is not None:
        policy.require_operator(
            principal, "Chỉ tổ chức vận hành hệ thống lập và áp dụng ấn bản danh mục.", code="operator_only"
        )
    sha = digest(edition)
    if long_running:  # before the locks: waiting for them is no reason to fail either
        await rows.allow_long_statements(session)
    await rows.lock_for_edition(session)
    existing = await rows.edition(session, edition.edition)
    if existing is not None:
        if existing.sha256 != sha:
            raise _conflict(edition.edition)
        return _applied(existing, already=True), False
    if edition.example and settings.environment == "production":
        raise _invalid(
            'Ấn bản này là ví dụ ("example": true); không áp dụng trên dữ liệu thật.', code="edition_is_example"
        )
    if edition.effective > today():
        raise _invalid(
            f"Ấn bản có hiệu lực từ {edition.effective.isoformat()}; chỉ áp dụng từ ngày đó (xem trước bằng plan).",
            code="edition_not_yet_effective",
        )
    if await rows.running_rounds(session):
        raise Conflict(
            "Một đợt xin ý kiến đang tạo phiếu; hãy áp dụng ấn bản khi đợt đó đã tạo xong.",
            code="edition_round_running",
        )
    registry = await org_rows.by_code(session)
    retirements, added, updated = _validate(edition, registry)
    summary, pending = await _plan(
        session=session, edition=edition, sha=sha, retirements=retirements, added=added, updated=updated
    )
    now = utcnow()
    _write_committees(session, edition, registry, now)
    await session.flush()
    row = RegistryEdition(
        id=edition.edition, sha256=sha, effective=edition.effective, description=edition.description,
        example=edition.example, content=canonical(edition), summary={}, applied_at=now,
        applied_by=principal.login if principal else CLI_ACTOR,
        applied_by_account=principal.account_id if principal else None,
    )  # fmt: skip
    await rows.add_edition(session, row)
    for r in retirements:
        org = registry[r.code]
        org.valid_to, org.updated_at = edition.effective, now
        org.successor_code = r.successors[0] if len(r.successors) == 1 else None
    await session.flush()
    for r in retirements:
        await rows.add_successions(session, edition_id=edition.edition, predecessor=r.code, successors=r.successors)
    moved: dict[tuple[str, str], int] = {}
    for side in SIDES:
        moved |= await rows.reassign(
            session, edition_id=edition.edition, side=side, moves=_moves(retirements, side), now=now
        )
    passed = await _transfer(
        session=session, edition=edition, pending=pending, created_by=principal.account_id if principal else None
    )
    if retirements:
        await rows.stop_subscriptions(session, [r.code for r in retirements], reason=RETIRED_REASON)
    # The record states what was done; under the edition's locks it is what the plan counted.
    for item in summary.reassignments:
        item.members = moved.get((item.from_org, item.to_org), 0)
        item.notices = passed.get((item.from_org, item.to_org), 0)
    summary.members_reassigned = sum(x.members for x in summary.reassignments)
    summary.notices_transferred = sum(passed.values())
    row.summary = summary.model_dump(mode="json")
    await session.flush()
    return _applied(row, already=False), True


def _write_committees(session: Session, edition: Edition, registry: dict[str, Organization], now) -> None:
    """Add the new committees (parents first: a parent may be new too) and update the others."""
    pending = list(edition.committees)
    placed = set(registry)
    while pending:
        later = []
        for committee in pending:
            values = committee.model_dump(mode="json")
            existing = registry.get(committee.code)
            if existing is not None:
                for f in _COMMITTEE_FIELDS:
                    setattr(existing, f, values[f])
                existing.updated_at = now
            elif committee.parent_code and committee.parent_code not in placed:
                later.append(committee)
                continue
            else:
                org = Organization(
                    **{f: values[f] for f in ("code", *_COMMITTEE_FIELDS)},
                    valid_from=edition.effective,
                    created_at=now,
                    updated_at=now,
                )
                org_rows.add(session, org)
            placed.add(committee.code)
        if len(later) == len(pending):  # parents that never come: refused by the validation already
            break
        pending = later


async def _transfer(
    *, session: Session, edition: Edition, pending: list[tuple[int, str]], created_by
) -> Counter[tuple[str, str]]:
    """Pass each open notice (`seq`) to its member's successor, in batches; how many per (retired, successor).
    The notices are the plan's: counted before the members moved, under the edition's locks."""
    passed: Counter[tuple[str, str]] = Counter()
    for start in range(0, len(pending), TRANSFER_BATCH):
        chunk = pending[start : start + TRANSFER_BATCH]
        found = await rows.notices_by_seq(session, [seq for seq, _ in chunk])
        batch = [(found[seq], to) for seq, to in chunk]
        # A transfer addressed to a committee now retired in turn carries its original on: that is what passes.
        carried = await rows.originals_of(session, [n.id for n, _ in batch if n.kind == NoticeKind.notice_transferred])
        originals = await rows.notices_by_id(session, list(set(carried.values())))
        items = [(originals[carried[n.id]] if n.id in carried else n, n.recipient_org, to) for n, to in batch]
        docs = await document_rows.carried(session, [o.id for o, _, _ in items])
        made = await notices.insert_transfers(
            session=session,
            transfers=[Transfer(original=o, from_org=f, to_org=t, documents=docs.get(o.id, [])) for o, f, t in items],
            edition=edition.edition,
            effective=edition.effective,
            created_by=created_by,
        )
        await rows.add_transfers(
            session,
            [
                {
                    "transfer_id": notice.id,
                    "original_id": o.id,
                    "edition": edition.edition,
                    "from_org": f,
                    "to_org": t,
                    "original_sender": o.sender_org,
                    "original_kind": o.kind,
                    "created_at": notice.created_at,
                }
                for notice, (o, f, t) in zip(made, items, strict=True)
            ],
        )
        for _, f, t in items:
            passed[f, t] += 1
    return passed


async def list_editions(*, session: Session, principal: Principal) -> list[EditionApplied]:
    """The editions applied so far, oldest first."""
    policy.require_operator(principal, "Chỉ tổ chức vận hành hệ thống xem các ấn bản đã áp dụng.", code="operator_only")
    return [_applied(row, already=False) for row in await rows.editions(session)]


async def record_command(
    *, session: Session, action: str, edition_id: str, details: dict, outcome: str = Outcome.allowed.value
) -> None:
    """The operator command's one audit entry, in its transaction (a request's entry is the request's own)."""
    await audit.append(
        session=session,
        request_id=None,
        actor_account=None,
        actor_login=CLI_ACTOR,
        actor_org=None,
        token_jti=None,
        action=action,
        resource_type="registry",
        resource_id=edition_id[:128],
        member_ref=None,
        counterpart_org=None,
        outcome=outcome,
        http_status=0,
        client_address=None,
        details=details,
    )


def audit_details(result: EditionPlan) -> dict:
    """What an audit entry keeps of a plan or an application: counts and codes, never a member's name."""
    return {
        "edition": result.edition,
        "sha256": result.sha256,
        "already_applied": result.already_applied,
        "added": result.added,
        "retired": [r.code for r in result.retired],
        "members_reassigned": result.members_reassigned,
        "unmappable": len(result.unmappable),
        "notices_transferred": result.notices_transferred,
        "notices_left": result.notices_left,
        "accounts_retired": len(result.accounts_retired),
        "subscriptions_stopped": len(result.subscriptions_stopped),
    }
