-- The audit trail: one row per executed mutation field, written by the GraphQL audit extension.
-- Rows form a hash chain: `hash` covers the row's content and `prev_hash`, the hash of the row
-- before it (by `seq`), so editing or deleting a row breaks every hash after it.
-- `audit_head` is the chain's head: one row, updated first in each append's transaction, which
-- serializes appends across connections and instances.

CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY NOT NULL,
    at             TIMESTAMP NOT NULL,
    actor_id       TEXT,
    actor_role     TEXT,
    operation_name TEXT,
    field          TEXT NOT NULL,
    arguments      TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    client_ip      TEXT,
    user_agent     TEXT,
    request_id     TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, seq);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY NOT NULL,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
