-- Back to every row chained when written. Refuses while rows are unchained: start the server
-- once so the chainer links them, then migrate down.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_log WHERE seq IS NULL) THEN
        RAISE EXCEPTION 'audit_log has unchained rows: start the server once so they are chained, then migrate down';
    END IF;
END
$$;

DROP INDEX audit_log_actor_idx;
DROP INDEX audit_log_unchained_idx;
DROP INDEX audit_log_seq_idx;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_chain_fields;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log DROP COLUMN id;
ALTER TABLE audit_log
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (seq);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, seq);
