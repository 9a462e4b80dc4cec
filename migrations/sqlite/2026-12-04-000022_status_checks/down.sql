-- The `IN` lists back (see up.sql).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE ai_calls_new (
    id                   TEXT PRIMARY KEY NOT NULL,
    user_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id      TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    request_id           TEXT,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    stream               BOOLEAN NOT NULL,
    status               TEXT NOT NULL
        CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    error_code           TEXT,
    error_message        TEXT,
    prompt_tokens        BIGINT NOT NULL DEFAULT 0,
    cached_prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens    BIGINT NOT NULL DEFAULT 0,
    usage_source         TEXT CHECK (usage_source IN ('REPORTED', 'ESTIMATED')),
    started_at           TIMESTAMP NOT NULL,
    finished_at          TIMESTAMP,
    latency_ms           BIGINT,
    ttft_ms              BIGINT,
    upstream_ms          BIGINT,
    price_id             TEXT REFERENCES prices (id),
    cost_micros          BIGINT NOT NULL DEFAULT 0,
    currency             TEXT,
    priced               BOOLEAN NOT NULL DEFAULT FALSE,
    cached               BOOLEAN NOT NULL DEFAULT FALSE,
    attempts             BLOB NOT NULL DEFAULT (jsonb('[]')),
    prompt_log           BLOB,
    api_key_id           TEXT REFERENCES api_keys (id)
);
INSERT INTO ai_calls_new (id, user_id, conversation_id, request_id, provider, model, stream, status, error_code, error_message, prompt_tokens, cached_prompt_tokens, completion_tokens, usage_source, started_at, finished_at, latency_ms, ttft_ms, upstream_ms, price_id, cost_micros, currency, priced, cached, attempts, prompt_log, api_key_id)
    SELECT id, user_id, conversation_id, request_id, provider, model, stream, status, error_code, error_message, prompt_tokens, cached_prompt_tokens, completion_tokens, usage_source, started_at, finished_at, latency_ms, ttft_ms, upstream_ms, price_id, cost_micros, currency, priced, cached, attempts, prompt_log, api_key_id FROM ai_calls;
DROP TABLE ai_calls;
ALTER TABLE ai_calls_new RENAME TO ai_calls;
CREATE INDEX ai_calls_user_idx ON ai_calls (user_id, id DESC);
CREATE INDEX ai_calls_started_idx ON ai_calls (started_at);
CREATE INDEX ai_calls_conversation_idx ON ai_calls (conversation_id)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX ai_calls_provider_started_idx ON ai_calls (provider, started_at);
CREATE INDEX ai_calls_key_idx ON ai_calls (api_key_id, id) WHERE api_key_id IS NOT NULL;
CREATE INDEX ai_calls_pending_idx ON ai_calls (started_at) WHERE status = 'PENDING';

CREATE TABLE messages_new (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('SYSTEM', 'USER', 'ASSISTANT')),
    content         TEXT NOT NULL,
    reasoning       TEXT,
    ai_call_id      TEXT REFERENCES ai_calls (id) ON DELETE SET NULL,
    created_at      TIMESTAMP NOT NULL
);
INSERT INTO messages_new (id, conversation_id, role, content, reasoning, ai_call_id, created_at)
    SELECT id, conversation_id, role, content, reasoning, ai_call_id, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
COMMIT;
PRAGMA foreign_keys = ON;
