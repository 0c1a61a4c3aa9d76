"""One system client for each exchange party (the Khối and the 30 districts), created in one process.

    python -m bench.accounts     # prints [{"org": ..., "client_id": ..., "client_secret": ...}, ...] as JSON

`member-exchange create-client` once per party would start 31 interpreters; the benchmark's set-up runs this
instead, with the service's own account service (so the secrets are hashed as in production).
"""

import asyncio
import json

from sqlalchemy import select


async def create_clients() -> list[dict]:
    from app.infra.db import db
    from app.models.account import AccountKind, Role
    from app.models.organization import Organization
    from app.schemas.account import AccountCreate
    from app.services.accounts import create_account

    out = []
    async with db.sessions() as session:
        orgs = (
            await session.scalars(
                select(Organization.code)
                .where(Organization.side.is_not(None), Organization.valid_to.is_(None))
                .order_by(Organization.code)
            )
        ).all()
        for code in orgs:
            data = AccountCreate(kind=AccountKind.client, org_code=code, roles=[Role.clerk])
            account, secret = await create_account(session=session, data=data, actor=None)
            out.append({"org": code, "client_id": account.login, "client_secret": secret})
        await session.commit()
    await db.engine.dispose()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(create_clients())))
