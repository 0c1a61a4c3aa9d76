#!/bin/sh
# Run once by the postgres image when its data volume is first created (docker-entrypoint-initdb.d): the
# mx_owner / mx_app roles of deploy/postgres-roles.sql, with the passwords compose passes in.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" -v owner_password="$MX_OWNER_PASSWORD" -v app_password="$MX_APP_PASSWORD" \
  -f /deploy/postgres-roles.sql
