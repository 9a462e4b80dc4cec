-- The audit chain off the request path. A request now inserts its row unchained: an `id` from
-- the database (insertion order, and the `auditLog` cursor) and no `seq`, `prev_hash` or `hash`,
-- so no request updates a shared row. The chainer (one instance at a time, under the
-- `audit-chain` lease) links unchained rows in batches: in one transaction it takes the head in
-- `audit_head`, gives each row the next `seq`, the previous row's hash and its own hash, and
-- moves the head. Rows chained before this migration keep `seq` and their hashes (and take
-- their `seq` as `id`), so the chain they form still verifies and goes on from the same head.
-- SQLite cannot change a column's nullability or a table's primary key: the table is rebuilt.

CREATE TABLE audit_log_chained (
    id             INTEGER PRIMARY KEY NOT NULL,
    seq            BIGINT,
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
    prev_hash      TEXT,
    hash           TEXT,
    CONSTRAINT audit_log_chain_fields
        CHECK ((seq IS NULL) = (prev_hash IS NULL) AND (seq IS NULL) = (hash IS NULL))
);
INSERT INTO audit_log_chained (id, seq, at, actor_id, actor_role, operation_name, field,
    arguments, outcome, client_ip, user_agent, request_id, prev_hash, hash)
SELECT seq, seq, at, actor_id, actor_role, operation_name, field,
    arguments, outcome, client_ip, user_agent, request_id, prev_hash, hash
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_chained RENAME TO audit_log;

-- One row per chain position; unchained rows (NULL) are not compared.
CREATE UNIQUE INDEX audit_log_seq_idx ON audit_log (seq);
-- The chainer's queue: only the rows still waiting.
CREATE INDEX audit_log_unchained_idx ON audit_log (id) WHERE seq IS NULL;
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);
