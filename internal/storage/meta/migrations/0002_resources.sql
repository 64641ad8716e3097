-- 0002_resources: generic ARM resources (resource groups now; private
-- endpoints, managed identities and role assignments later). Registries stay
-- in the registries table, which the data plane reads.
--
-- id_key is the ARM id lower-cased (ARM ids are case-insensitive); id keeps
-- the id as the client first gave it. type_key is the lower-cased type.
-- Children are found by id_key prefix, so listing and cascading deletes need
-- no parent column.

CREATE TABLE resources (
    id_key     TEXT   NOT NULL PRIMARY KEY,
    id         TEXT   NOT NULL,
    type_key   TEXT   NOT NULL,
    type       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    location   TEXT   NOT NULL,
    properties BYTEA,
    tags       BYTEA,
    sku        BYTEA,
    identity   BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version    BIGINT NOT NULL
);

CREATE INDEX resources_type ON resources (type_key, id_key);
