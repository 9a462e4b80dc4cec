-- Back to every row chained when written. Refuses (the CHECK fails) while rows are unchained:
-- start the server once so the chainer links them, then migrate down.

CREATE TEMPORARY TABLE audit_unchained_guard (n BIGINT NOT NULL CHECK (n = 0));
INSERT INTO audit_unchained_guard (n) SELECT COUNT(*) FROM audit_log WHERE seq IS NULL;
DROP TABLE audit_unchained_guard;

CREATE TABLE audit_log_unchained (
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
INSERT INTO audit_log_unchained (seq, at, actor_id, actor_role, operation_name, field,
    arguments, outcome, client_ip, user_agent, request_id, prev_hash, hash)
SELECT seq, at, actor_id, actor_role, operation_name, field,
    arguments, outcome, client_ip, user_agent, request_id, prev_hash, hash
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_unchained RENAME TO audit_log;
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, seq);
CREATE INDEX audit_log_at_idx ON audit_log (at);
