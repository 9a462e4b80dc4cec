DROP INDEX audit_log_seq_idx;
CREATE UNIQUE INDEX audit_log_seq_idx ON audit_log (seq);
DROP INDEX ai_calls_conversation_idx;
CREATE INDEX ai_calls_conversation_idx ON ai_calls (conversation_id);
