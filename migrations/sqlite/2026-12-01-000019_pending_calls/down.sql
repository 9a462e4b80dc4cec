DROP INDEX ai_calls_pending_idx;
