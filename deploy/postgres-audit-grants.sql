-- Run as mx_owner after `member-exchange init`: the service may only read and append to the audit tables.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries, audit_chain, audit_checkpoints, audit_spool_replays FROM mx_app;
GRANT SELECT, INSERT ON audit_entries, audit_chain, audit_checkpoints, audit_spool_replays TO mx_app;
