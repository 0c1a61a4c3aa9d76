"""`member-exchange`: operator commands outside HTTP (init, accounts, keys, serve)."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from alembic.config import Config

from alembic import command
from app.infra.config import settings
from app.models.account import AccountKind, Role
from app.schemas.account import AccountCreate, AccountPublic

USERNAME_RULE = "3-64 characters: lowercase letters a-z, digits, '.', '_' or '-', starting with a letter or digit"


class CliError(Exception):
    """A mistake in the command line or its data: reported as one line on stderr, exit status 2."""


def _party_codes() -> list[tuple[str, str]]:
    """(code, name) of every committee that may hold accounts (it has a side of the exchange): the registry in the
    database (registry editions change it), or the file `init` loads while the database is not set up yet."""
    from app.services.organizations import registry_data

    try:
        parties = asyncio.run(_active_parties())
    except Exception:  # noqa: BLE001 - no database yet (or none reachable): the shipped registry
        parties = []
    return parties or [(o["code"], o["name"]) for o in registry_data() if o.get("side") and not o.get("valid_to")]


async def _active_parties() -> list[tuple[str, str]]:
    from app.infra.db import db
    from app.services.organizations import list_organizations

    try:
        async with db.sessions() as session:
            orgs = await list_organizations(session=session, kind=None, side=None, active_only=True)
            return [(o.code, o.name) for o in orgs if o.side is not None]
    finally:
        await db.engine.dispose()


def _org_code(value: str) -> str:
    """A committee code from the registry; a name or a code in capitals is pointed to the right code."""
    from app.text import fold

    parties = _party_codes()
    codes = [c for c, _ in parties]
    if value in codes:
        return value
    wanted = fold(value).replace(" ", "-")
    hint = next(
        (c for c, name in parties if wanted in (c, fold(name).replace(" ", "-")) or wanted.endswith("-" + c)), None
    )
    if hint:
        raise CliError(f"--org {value!r} is not a committee code; did you mean --org {hint}?")
    raise CliError(
        f"--org {value!r}: unknown committee code (or one a registry edition retired); valid codes: {', '.join(codes)}"
    )


def _username(value: str) -> str:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{2,63}", value):
        raise CliError(f"--username {value!r}: {USERNAME_RULE} (e.g. nguyen.thi.lan)")
    return value


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
    from app.devdata.demo import ensure_demo_accounts, ensure_demo_members
    from app.infra.db import db
    from app.services.keys import ensure_signing_key
    from app.services.organizations import load_registry

    async with db.sessions() as session:
        orgs = await load_registry(session=session)
        key_created = await ensure_signing_key(session=session)
        demo_created = await ensure_demo_accounts(session=session) if demo else 0
        members_created = await ensure_demo_members(session=session) if demo else 0
        await session.commit()
    await db.engine.dispose()
    return {
        "organizations": orgs,
        "signing_key_created": key_created,
        "demo_accounts_created": demo_created,
        "demo_members_created": members_created,
    }


def cmd_init(args: argparse.Namespace) -> None:
    demo = args.demo or settings.demo_accounts
    if demo and settings.environment == "production":
        raise SystemExit("error: demo accounts and demo members are refused in production (MX_ENVIRONMENT=production)")
    migrate()
    print(json.dumps(asyncio.run(_bootstrap(demo)), ensure_ascii=False))


async def _create_account(data: AccountCreate) -> dict:
    from app.infra.db import db
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


def _account(**fields) -> AccountCreate:
    from pydantic import ValidationError

    try:
        return AccountCreate(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        option = "--" + str(err["loc"][0]).replace("_", "-") if err.get("loc") else "input"
        raise CliError(f"{option}: {err['msg'].removeprefix('Value error, ')}") from None


def cmd_create_client(args: argparse.Namespace) -> None:
    data = _account(
        kind=AccountKind.client, org_code=_org_code(args.org), roles=[Role(r) for r in args.role or ["clerk"]]
    )
    print(json.dumps(asyncio.run(_create_account(data)), ensure_ascii=False))


def cmd_create_user(args: argparse.Namespace) -> None:
    data = _account(
        kind=AccountKind.user,
        org_code=_org_code(args.org),
        username=_username(args.username),
        roles=[Role(r) for r in args.role],
        full_name=args.full_name,
        position=args.position,
    )
    print(json.dumps(asyncio.run(_create_account(data)), ensure_ascii=False))


async def _rotate_secret(login: str) -> dict:
    from sqlalchemy import select

    from app.infra.db import db
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
    from app.infra.db import db
    from app.services.keys import rotate_keys

    async with db.sessions() as session:
        key = await rotate_keys(session=session)
        await session.commit()
    await db.engine.dispose()
    from datetime import timedelta

    from app.infra.security import KeyStore

    # Running services reload their keys at most KeyStore.REFRESH_SECONDS after their last load, on a request.
    switch_by = key.created_at + timedelta(seconds=KeyStore.REFRESH_SECONDS)
    return {"kid": key.kid, "created_at": key.created_at.isoformat(), "in_use_by": switch_by.isoformat()}


def cmd_rotate_keys(_args: argparse.Namespace) -> None:
    from app.infra.security import KeyStore

    out = asyncio.run(_rotate())
    print(json.dumps(out))
    print(
        f"New signing key {out['kid']}: running services sign with it from their first request after "
        f"{out['in_use_by']} (within {KeyStore.REFRESH_SECONDS:.0f} s; restart them to switch at once). "
        "Tokens and signatures made with older keys stay verifiable (JWKS keeps them).",
        file=sys.stderr,
    )


async def _verify_audit(checkpoints: list[str], resume: bool, workers) -> dict:
    from app.infra.db import db
    from app.infra.security import keystore
    from app.infra.spool import spool
    from app.services import audit

    async with db.sessions() as session:
        await keystore.load(session)
    await audit.seal_now(db.sessions)
    report = await audit.verify(sessions=db.sessions, presented=checkpoints, resume=resume, workers=workers)
    async with db.sessions() as session:
        await audit.record(session=session, report=report, by="verify-audit")
        await session.commit()
    await db.engine.dispose()
    out = report.model_dump(mode="json")
    # Entries waiting in the local spool (written while the database was down) are not in the log yet: say how
    # many; a damaged spool file is a failure, like a damaged chain.
    out["spool"] = await asyncio.to_thread(spool.status)
    if out["spool"]["corrupt"]:
        out["ok"] = False
    return out


def cmd_verify_audit(args: argparse.Namespace) -> None:
    from app.services import audit

    # A long chain is recomputed in one worker process per core, its own command's (the service's processes only
    # see the reads); forked now, before this process has threads or connections.
    with audit.verification_workers(fork=True) as workers:
        report = asyncio.run(_verify_audit(args.checkpoint or [], args.resume, workers))
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if not report["ok"]:
        raise SystemExit(1)


async def _housekeeping() -> dict:
    from app.infra.db import db
    from app.services import housekeeping

    removed = await housekeeping.run_once()
    await db.engine.dispose()
    return {"ran": removed is not None, "removed": removed or {}}


def cmd_housekeeping(_args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(_housekeeping())))


async def _generate(count: int, start: int, seed: int) -> dict:
    from app.devdata.synthetic import insert_members, make_members
    from app.infra.db import db

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


def _read_edition(path: str):
    """The edition file, validated; a mistake in it is one line naming the file and the field."""
    from pydantic import ValidationError

    from app.schemas.registry import Edition

    def unique(pairs: list) -> dict:
        seen: set = set()
        for key, _ in pairs:
            if key in seen:  # json.loads would keep the last one silently: a ward mapped twice must be seen
                raise CliError(f"{path}: {key!r} is written twice in the same object")
            seen.add(key)
        return dict(pairs)

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"), object_pairs_hook=unique)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{path}: not a JSON file in UTF-8: {exc}") from None
    try:
        return Edition.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "edition"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CliError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}{more}") from None


async def _registry(action: str, edition) -> dict:
    from app.errors import AppError
    from app.infra.db import db
    from app.infra.security import keystore
    from app.services import registry
    from app.services.sequencer import sequencer

    changed = False
    try:
        async with db.sessions() as session:
            if action == "plan":
                result = await registry.plan(session=session, principal=None, edition=edition, long_running=True)
            else:
                await keystore.load(session)  # transfers are signed like any notice
                result, changed = await registry.apply(
                    session=session, principal=None, edition=edition, long_running=True
                )
            await registry.record_command(
                session=session,
                action=f"registry.{action}",
                edition_id=edition.edition,
                details=registry.audit_details(result),
            )
            await session.commit()
        if changed:  # the transfers are pullable at once, even with no service running
            await sequencer.run_once(db.sessions)
    except AppError as exc:
        async with db.sessions() as session:
            await registry.record_command(
                session=session,
                action=f"registry.{action}",
                edition_id=edition.edition,
                details={"code": exc.code},
                outcome="failed",
            )
            await session.commit()
        raise
    finally:
        await db.engine.dispose()
    return result.model_dump(mode="json")


def cmd_registry(args: argparse.Namespace) -> None:
    edition = _read_edition(args.file)
    print(json.dumps(asyncio.run(_registry(args.action, edition)), ensure_ascii=False, indent=2))


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


def build_parser() -> argparse.ArgumentParser:
    """The command line: every command and option with its help text."""
    parser = argparse.ArgumentParser(prog="member-exchange", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="run migrations, load the committee registry, create a signing key")
    p.add_argument(
        "--demo",
        action="store_true",
        help="also create the documented demo accounts and demo members (DEMO ONLY; refused in production)",
    )
    p.set_defaults(func=cmd_init)

    org_help = "committee code from the registry (not its name); an unknown code is answered with the valid ones"
    p = sub.add_parser("create-client", help="create a system client; prints its credentials once, as JSON")
    p.add_argument("--org", required=True, help=org_help)
    p.add_argument(
        "--role",
        action="append",
        choices=["clerk", "auditor", "admin"],
        help="a role of the client; repeatable (default: clerk)",
    )
    p.set_defaults(func=cmd_create_client)

    p = sub.add_parser("create-user", help="create a staff user; prints the password once, as JSON")
    p.add_argument("--org", required=True, help=org_help)
    p.add_argument("--username", required=True, help=f"the login: {USERNAME_RULE}")
    p.add_argument("--role", action="append", required=True, choices=[r.value for r in Role], help="a role; repeatable")
    p.add_argument("--full-name", help='full name, e.g. "Nguyễn Thị Lan" (required with --role officer)')
    p.add_argument("--position", help='position, e.g. "Phó Trưởng Ban Tổ chức" (required with --role officer)')
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser(
        "rotate-secret", help="new password or client secret for an account (printed once); its older tokens end"
    )
    p.add_argument("--login", required=True, help="the staff login or the client_id")
    p.set_defaults(func=cmd_rotate_secret)

    p = sub.add_parser(
        "rotate-keys",
        help="add a new signing key; running services use it within 60 s; older keys verify until their tokens expire",
    )
    p.set_defaults(func=cmd_rotate_keys)

    p = sub.add_parser("verify-audit", help="seal, recompute the audit chain, check checkpoints; exit 1 on tampering")
    p.add_argument("--checkpoint", action="append", help="a checkpoint (JWS) kept by a committee; repeatable")
    p.add_argument(
        "--resume", action="store_true", help="recompute only after the newest checkpoint a passed verification covered"
    )
    p.set_defaults(func=cmd_verify_audit)

    p = sub.add_parser("housekeeping", help="remove expired idempotency records, old deliveries, stale throttle rows")
    p.set_defaults(func=cmd_housekeeping)

    p = sub.add_parser("generate-members", help="insert synthetic members for load tests (not in production)")
    p.add_argument("--count", type=int, default=9000, help="how many members (default 9000)")
    p.add_argument("--start", type=int, default=20_000_000, help="first party card number")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same members")
    p.set_defaults(func=cmd_generate_members)

    p = sub.add_parser(
        "registry",
        help="plan or apply a registry edition (a re-organisation of the committees, see README)",
        description="plan: print what the edition would change (nothing is written). apply: apply it in one "
        "transaction with one audit entry; the same edition again changes nothing.",
    )
    p.add_argument("action", choices=["plan", "apply"], help="plan (a dry run) or apply")
    p.add_argument(
        "file", help="the edition file (JSON), e.g. app/data/editions/example-2025-07-01-ba-dinh-hoan-kiem-tay-ho.json"
    )
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("serve", help="init, then run the HTTP service")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    p.add_argument(
        "--demo", action="store_true", help="create the demo accounts and members first (DEMO ONLY; not in production)"
    )
    p.set_defaults(func=cmd_serve)

    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.func is not cmd_serve:
        # Operator commands may run long statements (a whole-log verification, bulk inserts): no client-side
        # statement deadline for them; the service keeps MX_DB_COMMAND_TIMEOUT_SECONDS.
        settings.db_command_timeout_seconds = 0
    try:
        args.func(args)
    except CliError as exc:
        print(f"member-exchange {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        from app.errors import AppError

        if isinstance(exc, AppError):
            detail = exc.detail
            if exc.code == "organization_not_found":
                detail += " Valid codes: " + ", ".join(c for c, _ in _party_codes())
            raise SystemExit(f"member-exchange {args.command}: error: {exc.code}: {detail}") from None
        raise


if __name__ == "__main__":
    main()
