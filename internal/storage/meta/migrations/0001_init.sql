-- 0001_init: moat's first metadata schema.
--
-- Portable SQL: runs unchanged on SQLite (modernc.org/sqlite) and PostgreSQL
-- 15. Byte columns are BYTEA (PostgreSQL's byte type; SQLite gives the name
-- NUMERIC affinity, which never converts BLOB values, and the stores always
-- bind []byte, so bytes stay bytes). Timestamps are BIGINT unix nanoseconds.
-- Deleting a registry cascades through the foreign keys to everything stored
-- in it.

CREATE TABLE registries (
    name        TEXT   NOT NULL PRIMARY KEY,
    resource_id TEXT   NOT NULL,
    location    TEXT   NOT NULL,
    sku         TEXT   NOT NULL,
    properties  BYTEA,
    tags        BYTEA,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);

CREATE TABLE repositories (
    registry   TEXT   NOT NULL REFERENCES registries (name) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (registry, name)
);

CREATE TABLE blob_links (
    registry   TEXT   NOT NULL,
    repository TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    PRIMARY KEY (registry, repository, digest),
    FOREIGN KEY (registry, repository)
        REFERENCES repositories (registry, name) ON DELETE CASCADE
);

CREATE TABLE manifests (
    registry      TEXT   NOT NULL,
    repository    TEXT   NOT NULL,
    digest        TEXT   NOT NULL,
    media_type    TEXT   NOT NULL,
    artifact_type TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    annotations   BYTEA,
    content       BYTEA  NOT NULL,
    size          BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (registry, repository, digest),
    FOREIGN KEY (registry, repository)
        REFERENCES repositories (registry, name) ON DELETE CASCADE
);

-- The referrers API: manifests of one repository with a given subject, in
-- digest order.
CREATE INDEX manifests_subject ON manifests (registry, repository, subject, digest);

-- What a manifest references: its config and layers (ref_kind 'blob') or the
-- manifests of an index (ref_kind 'manifest').
CREATE TABLE manifest_refs (
    registry   TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    ref_digest TEXT NOT NULL,
    ref_kind   TEXT NOT NULL CHECK (ref_kind IN ('blob', 'manifest')),
    PRIMARY KEY (registry, repository, digest, ref_digest, ref_kind),
    FOREIGN KEY (registry, repository, digest)
        REFERENCES manifests (registry, repository, digest) ON DELETE CASCADE
);

-- A tag cannot outlive its manifest: deleting the manifest deletes its tags.
CREATE TABLE tags (
    registry   TEXT   NOT NULL,
    repository TEXT   NOT NULL,
    tag        TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (registry, repository, tag),
    FOREIGN KEY (registry, repository, digest)
        REFERENCES manifests (registry, repository, digest) ON DELETE CASCADE
);

CREATE INDEX tags_digest ON tags (registry, repository, digest);

-- An upload does not create its repository; it belongs to its registry.
-- byte_offset is the blob store's upload offset ("offset" is reserved in
-- PostgreSQL).
CREATE TABLE uploads (
    id          TEXT   NOT NULL PRIMARY KEY,
    registry    TEXT   NOT NULL REFERENCES registries (name) ON DELETE CASCADE,
    repository  TEXT   NOT NULL,
    byte_offset BIGINT NOT NULL,
    hash_state  BYTEA,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX uploads_registry ON uploads (registry);
CREATE INDEX uploads_updated_at ON uploads (updated_at);

CREATE TABLE principals (
    id          TEXT   NOT NULL PRIMARY KEY,
    kind        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    secret_hash BYTEA,
    properties  BYTEA,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (kind, name)
);

CREATE TABLE signing_keys (
    id          TEXT   NOT NULL PRIMARY KEY,
    algorithm   TEXT   NOT NULL,
    private_key BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
