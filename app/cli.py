"""`member-exchange`: operator commands outside HTTP (init, accounts, keys, serve)."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from alembic.config import Config

from alembic import command
from app.config import settings
from app.models.account import AccountCreate, AccountKind, AccountPublic, Role


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's config, found beside the package (source checkout, Docker image) or in the working directory."""
    for candidate in (Path(__file__).resolve().parent.parent / "alembic.ini", Path.cwd() / "alembic.ini"):
        if candidate.exists():
            cfg = Config(str(candidate))
            cfg.attributes["configure_logger"] = False
            if database_url:
                cfg.attributes["database_url"] = database_url
            return cfg
    raise SystemExit("alembic.ini not found: run from the project directory")


def migrate(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


async def _bootstrap(demo: bool) -> dict:
    from app.db import db
    from app.demo import ensure_demo_accounts
    from app.services.keys import ensure_signing_key
    from app.services.organizations import load_registry

    async with db.sessions() as session:
        orgs = await load_registry(session=session)
        key_created = await ensure_signing_key(session=session)
        demo_created = await ensure_demo_accounts(session=session) if demo else 0
        await session.commit()
    await db.engine.dispose()
    return {"organizations": orgs, "signing_key_created": key_created, "demo_accounts_created": demo_created}


def cmd_init(args: argparse.Namespace) -> None:
    demo = args.demo or settings.demo_accounts
    if demo and settings.environment == "production":
        raise SystemExit("demo accounts are refused in production")
    migrate()
    print(json.dumps(asyncio.run(_bootstrap(demo)), ensure_ascii=False))


async def _create_account(data: AccountCreate) -> dict:
    from app.db import db
    from app.services.accounts import create_account

    async with db.sessions() as session:
        account, secret = await create_account(session=session, data=data, actor=None)
        await session.commit()
    await db.engine.dispose()
    out = AccountPublic.of(account).model_dump(mode="json")
    out["secret"] = secret
    if account.kind == AccountKind.client:
        out["client_id"], out["client_secret"] = account.login, secret
    return out


def cmd_create_client(args: argparse.Namespace) -> None:
    data = AccountCreate(kind=AccountKind.client, org_code=args.org, roles=[Role(r) for r in args.role or ["clerk"]])
    print(json.dumps(asyncio.run(_create_account(data)), ensure_ascii=False))


def cmd_create_user(args: argparse.Namespace) -> None:
    data = AccountCreate(
        kind=AccountKind.user,
        org_code=args.org,
        username=args.username,
        roles=[Role(r) for r in args.role],
        full_name=args.full_name,
        position=args.position,
    )
    print(json.dumps(asyncio.run(_create_account(data)), ensure_ascii=False))


async def _rotate_secret(login: str) -> dict:
    from sqlalchemy import select

    from app.db import db
    from app.models.account import Account
    from app.services.accounts import rotate_secret

    async with db.sessions() as session:
        account = (await session.execute(select(Account).where(Account.login == login))).scalar_one_or_none()
        if account is None:
            raise SystemExit(f"no account with login {login!r}")
        secret = await rotate_secret(session=session, account=account)
        await session.commit()
        out = AccountPublic.of(account).model_dump(mode="json")
    await db.engine.dispose()
    out["secret"] = secret
    if account.kind == AccountKind.client:
        out["client_id"], out["client_secret"] = account.login, secret
    return out


def cmd_rotate_secret(args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(_rotate_secret(args.login)), ensure_ascii=False))


async def _rotate() -> dict:
    from app.db import db
    from app.services.keys import rotate_keys

    async with db.sessions() as session:
        key = await rotate_keys(session=session)
        await session.commit()
    await db.engine.dispose()
    return {"kid": key.kid, "created_at": key.created_at.isoformat()}


def cmd_rotate_keys(_args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(_rotate())))


async def _verify_audit(checkpoints: list[str]) -> dict:
    from app.db import db
    from app.security import keystore
    from app.services import audit

    async with db.sessions() as session:
        await keystore.load(session)
    async with db.sessions() as session:
        await audit.seal(session=session)
        await session.commit()
        report = await audit.verify(session=session, presented=checkpoints)
    await db.engine.dispose()
    return report.model_dump(mode="json")


def cmd_verify_audit(args: argparse.Namespace) -> None:
    report = asyncio.run(_verify_audit(args.checkpoint or []))
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if not report["ok"]:
        raise SystemExit(1)


async def _generate(count: int, start: int, seed: int) -> dict:
    from app.db import db
    from app.synthetic import insert_members, make_members

    done = 0
    chunk = 50_000
    for offset in range(0, count, chunk):
        rows = make_members(min(chunk, count - offset), start=start + offset, seed=seed + offset)
        async with db.sessions() as session:
            done += await insert_members(session=session, rows=rows)
            await session.commit()
    await db.engine.dispose()
    return {"members_created": done, "first_card": str(start), "last_card": str(start + count - 1)}


def cmd_generate_members(args: argparse.Namespace) -> None:
    if settings.environment == "production":
        raise SystemExit("synthetic members are refused in production")
    print(json.dumps(asyncio.run(_generate(args.count, args.start, args.seed))))


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    cmd_init(argparse.Namespace(demo=args.demo))
    if args.demo:
        print("DEMO accounts are enabled (see README): never use them in production.", file=sys.stderr)
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        proxy_headers=False,
        server_header=False,  # no "server: uvicorn": nothing to tell a scanner which stack answers
        log_config=None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="member-exchange", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="run migrations, load the committee registry, create a signing key")
    p.add_argument("--demo", action="store_true", help="also create the documented demo accounts (not in production)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("create-client", help="create a system client; prints its credentials once, as JSON")
    p.add_argument("--org", required=True)
    p.add_argument("--role", action="append", choices=["clerk", "auditor", "admin"])
    p.set_defaults(func=cmd_create_client)

    p = sub.add_parser("create-user", help="create a staff user; prints the password once, as JSON")
    p.add_argument("--org", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    p.add_argument("--full-name")
    p.add_argument("--position")
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser(
        "rotate-secret", help="new password or client secret for an account (printed once); its older tokens end"
    )
    p.add_argument("--login", required=True, help="the staff login or the client_id")
    p.set_defaults(func=cmd_rotate_secret)

    p = sub.add_parser("rotate-keys", help="add a new signing key; older keys verify until their tokens expire")
    p.set_defaults(func=cmd_rotate_keys)

    p = sub.add_parser("verify-audit", help="seal, recompute the audit chain, check checkpoints; exit 1 on tampering")
    p.add_argument("--checkpoint", action="append", help="a checkpoint (JWS) kept by a committee; repeatable")
    p.set_defaults(func=cmd_verify_audit)

    p = sub.add_parser("generate-members", help="insert synthetic members for load tests (not in production)")
    p.add_argument("--count", type=int, default=9000)
    p.add_argument("--start", type=int, default=20_000_000, help="first party card number")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_generate_members)

    p = sub.add_parser("serve", help="init, then run the HTTP service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--demo", action="store_true", help="create the demo accounts first (not in production)")
    p.set_defaults(func=cmd_serve)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except Exception as exc:
        from app.errors import AppError

        if isinstance(exc, AppError):
            raise SystemExit(f"error: {exc.code}: {exc.detail}") from None
        raise


if __name__ == "__main__":
    main()
