-- 0004_audit: audit records of data-plane network decisions (meta.AuditStore).
-- No foreign key to registries: an audit trail outlives what it audits, so
-- a registry's records stay (until they expire) after it is deleted.

-- audit_records: one row per recorded decision. id is a store-assigned
-- random hex string; event_time is unix nanoseconds; allowed is 1 or 0
-- (BOOLEAN is not portable). Rows older than meta.AuditRetention are pruned
-- by AddAuditRecord.
CREATE TABLE audit_records (
    id               TEXT   NOT NULL PRIMARY KEY,
    event_time       BIGINT NOT NULL,
    registry         TEXT   NOT NULL,
    endpoint         TEXT   NOT NULL,
    client_ip        TEXT   NOT NULL,
    principal        TEXT   NOT NULL,
    allowed          BIGINT NOT NULL,
    step             TEXT   NOT NULL,
    reason           TEXT   NOT NULL,
    rule_set_version TEXT   NOT NULL,
    method           TEXT   NOT NULL,
    path             TEXT   NOT NULL
);

CREATE INDEX audit_records_registry_time ON audit_records (registry, event_time);

CREATE INDEX audit_records_time ON audit_records (event_time);
