"""account cache: PostgreSQL announces each change to accounts and committees (NOTIFY mx_accounts)

Each service process caches its callers' accounts and listens on the channel `mx_accounts` (app/services/
account_cache.py). A change to an account notifies its id; a change to committees notifies '*' (side, operator
flag and end date are part of every cached account of the committee). PostgreSQL sends the notifications when the
transaction commits, and not at all if it rolls back. The triggers fire `ALWAYS`, so that a session in replica
mode (a restore, a logical replica) announces its changes too. SQLite: nothing (the service caches nothing there).

Revision ID: 0012_account_cache
Revises: 0011_editions
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_account_cache"
down_revision: str | None = "0011_editions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION mx_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('mx_accounts', OLD.id::text);
            ELSE
                PERFORM pg_notify('mx_accounts', NEW.id::text);
                IF TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id THEN
                    PERFORM pg_notify('mx_accounts', OLD.id::text);
                END IF;
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE FUNCTION mx_accounts_all_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('mx_accounts', '*');
            RETURN NULL;
        END $$
    """)
    op.execute("CREATE TRIGGER accounts_notify AFTER INSERT OR UPDATE OR DELETE ON accounts "
               "FOR EACH ROW EXECUTE FUNCTION mx_account_changed()")
    op.execute("CREATE TRIGGER accounts_notify_truncate AFTER TRUNCATE ON accounts "
               "FOR EACH STATEMENT EXECUTE FUNCTION mx_accounts_all_changed()")
    # One '*' per statement, however many committees it changes (a registry edition retires many at once).
    op.execute("CREATE TRIGGER organizations_notify AFTER UPDATE OR DELETE OR TRUNCATE ON organizations "
               "FOR EACH STATEMENT EXECUTE FUNCTION mx_accounts_all_changed()")
    for table, trigger in (("accounts", "accounts_notify"), ("accounts", "accounts_notify_truncate"),
                           ("organizations", "organizations_notify")):
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS organizations_notify ON organizations")
    op.execute("DROP TRIGGER IF EXISTS accounts_notify_truncate ON accounts")
    op.execute("DROP TRIGGER IF EXISTS accounts_notify ON accounts")
    op.execute("DROP FUNCTION IF EXISTS mx_accounts_all_changed()")
    op.execute("DROP FUNCTION IF EXISTS mx_account_changed()")
