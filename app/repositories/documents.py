"""Documents in the database: the scope rule (who may see a document) and the statements on documents and
supplier keys."""

import uuid

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import Account
from app.models.document import Document, NoticeDocument, SupplierKey
from app.models.notice import Notice
from app.repositories import notices


def readable(org: str) -> ColumnElement[bool]:
    """The scope rule for documents, and the only one: a document is seen by its supplier and by whoever may read
    a notice that carries it (app.repositories.notices.readable: both parties, and their successors for their
    members)."""
    carried = (
        select(NoticeDocument.notice_id)
        .join(Notice, Notice.id == NoticeDocument.notice_id)
        .where(NoticeDocument.document_id == Document.id, notices.readable(org))
        .exists()
    )
    return or_(Document.supplier_org == org, carried)


class NotLatest(Exception):
    """Another version of the same document was stored first."""


async def get_visible(session: AsyncSession, *, org: str, document_id: uuid.UUID) -> Document | None:
    stmt = select(Document).where(Document.id == document_id, readable(org))
    return (await session.execute(stmt)).scalar_one_or_none()


async def versions(session: AsyncSession, *, org: str, root_id: uuid.UUID) -> list[Document]:
    """The versions of a document `org` may see, oldest first."""
    stmt = select(Document).where(Document.root_id == root_id, readable(org)).order_by(Document.version)
    return list((await session.execute(stmt)).scalars())


async def superseded_by(session: AsyncSession, document_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Document.id).where(Document.supersedes == document_id))


async def add(session: AsyncSession, doc: Document) -> None:
    """Store a new document (version); NotLatest when a concurrent correction of the same version came first."""
    session.add(doc)
    try:
        await session.flush()
    except IntegrityError:
        raise NotLatest from None


async def carried(session: AsyncSession, notice_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Document]]:
    """The documents each notice carries, in one query."""
    if not notice_ids:
        return {}
    rows = await session.execute(
        select(NoticeDocument.notice_id, Document)
        .join(Document, Document.id == NoticeDocument.document_id)
        .where(NoticeDocument.notice_id.in_(notice_ids))
        .order_by(Document.created_at)
    )
    out: dict[uuid.UUID, list[Document]] = {}
    for notice_id, doc in rows:
        out.setdefault(notice_id, []).append(doc)
    return out


async def supplied_by(session: AsyncSession, *, org: str, ids: list[uuid.UUID]) -> list[Document]:
    """Those of the documents that `org` supplied."""
    stmt = select(Document).where(Document.id.in_(ids), Document.supplier_org == org)
    return list((await session.execute(stmt)).scalars())


async def account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    return await session.get(Account, account_id)


async def account_by_login(session: AsyncSession, login: str) -> Account | None:
    return (await session.execute(select(Account).where(Account.login == login))).scalar_one_or_none()


# ---- supplier keys ------------------------------------------------------------------------------------------


async def supplier_key(session: AsyncSession, *, org: str, kid: str) -> SupplierKey | None:
    """One of `org`'s own keys (a kid is that committee's name for its key)."""
    return await session.get(SupplierKey, (org, kid))


async def add_key(session: AsyncSession, key: SupplierKey) -> None:
    session.add(key)
    await session.flush()


async def keys_of(session: AsyncSession, org: str) -> list[SupplierKey]:
    stmt = select(SupplierKey).where(SupplierKey.org_code == org).order_by(SupplierKey.created_at)
    return list((await session.execute(stmt)).scalars())
