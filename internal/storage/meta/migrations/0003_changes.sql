-- 0003_changes: the change feed and leases that let several moat processes
-- share one metadata store (meta.ChangeFeed, meta.Leaser). Depends on no
-- table of an earlier migration.

-- changes: one row per published change. seq is assigned by the publisher
-- as max(seq) + 1 while it holds the table's write lock (SQLite's single
-- writer; LOCK TABLE in PostgreSQL), so seqs grow in commit order and a
-- poller that has read up to seq N never later finds a smaller one. Rows
-- older than meta.ChangeRetention are pruned, except the newest, so that
-- max(seq) never goes back. change_key because KEY is a keyword.
CREATE TABLE changes (
    seq        BIGINT NOT NULL PRIMARY KEY,
    topic      TEXT   NOT NULL,
    change_key TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX changes_created_at ON changes (created_at);

-- leases: who holds each named lease until when (unix nanoseconds, on the
-- database server's clock where there is one).
CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
