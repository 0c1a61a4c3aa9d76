-- PostgreSQL roles for member-exchange: the schema owner runs migrations; the service runs as a role that
-- owns nothing, so it cannot disable the audit tables' append-only triggers, alter or drop them, and it is
-- not a superuser (so it cannot set session_replication_role either).
--
--   psql -v db=member_exchange -v owner_password=... -v app_password=... -f deploy/postgres-roles.sql
--
-- Then migrate as the owner:  DATABASE_URL=postgresql://mx_owner:...@host/member_exchange member-exchange init
-- and serve as the app role:  DATABASE_URL=postgresql://mx_app:...@host/member_exchange member-exchange serve

CREATE ROLE mx_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE mx_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
ALTER DATABASE :"db" OWNER TO mx_owner;
\connect :"db"
ALTER SCHEMA public OWNER TO mx_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO mx_app;
-- Tables created later by the owner's migrations get the right grants automatically.
ALTER DEFAULT PRIVILEGES FOR ROLE mx_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mx_app;
ALTER DEFAULT PRIVILEGES FOR ROLE mx_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO mx_app;
