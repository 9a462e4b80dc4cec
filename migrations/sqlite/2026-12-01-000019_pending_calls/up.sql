-- The calls still PENDING, by start: the sweep that finishes those a stopped server left behind
-- reads only these, however many finished calls the table holds.
CREATE INDEX ai_calls_pending_idx ON ai_calls (started_at) WHERE status = 'PENDING';
