-- Fewer index pages written by every call. Two indexes held an entry for every row whatever it
-- was: `ai_calls_conversation_idx` for calls outside any conversation (most of them: `/v1` and
-- plain `chat`), and `audit_log_seq_idx` for rows not chained yet (every row, until the chainer
-- links it). Every lookup they serve names a value (the foreign key's `conversation_id = ?`;
-- `seq` ranges and the chain's uniqueness), so entries for NULL served nothing.
DROP INDEX ai_calls_conversation_idx;
CREATE INDEX ai_calls_conversation_idx ON ai_calls (conversation_id)
    WHERE conversation_id IS NOT NULL;
DROP INDEX audit_log_seq_idx;
CREATE UNIQUE INDEX audit_log_seq_idx ON audit_log (seq) WHERE seq IS NOT NULL;
