-- AI calls: effective-dated prices, conversations and their messages, and one record per call
-- attempt. Money is BIGINT micro-units of `currency`; prices are micro-units per 1M tokens.

CREATE TABLE prices (
    id                           TEXT PRIMARY KEY,
    provider                     TEXT NOT NULL,
    model                        TEXT NOT NULL,
    input_micros_per_mtok        BIGINT NOT NULL CHECK (input_micros_per_mtok >= 0),
    cached_input_micros_per_mtok BIGINT NOT NULL CHECK (cached_input_micros_per_mtok >= 0),
    output_micros_per_mtok       BIGINT NOT NULL CHECK (output_micros_per_mtok >= 0),
    currency                     TEXT NOT NULL,
    effective_from               TIMESTAMP NOT NULL,
    created_at                   TIMESTAMP NOT NULL,
    created_by                   TEXT REFERENCES users (id) ON DELETE SET NULL,
    note                         TEXT,
    UNIQUE (provider, model, effective_from)
);

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    provider   TEXT,
    model      TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX conversations_user_updated_idx ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE ai_calls (
    id                   TEXT PRIMARY KEY,
    user_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id      TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    request_id           TEXT,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    stream               BOOLEAN NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
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
    attempts             JSONB NOT NULL DEFAULT '[]'::jsonb,
    prompt_log           JSONB
);
CREATE INDEX ai_calls_user_idx ON ai_calls (user_id, id DESC);
CREATE INDEX ai_calls_started_idx ON ai_calls (started_at);
CREATE INDEX ai_calls_conversation_idx ON ai_calls (conversation_id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('SYSTEM', 'USER', 'ASSISTANT')),
    content         TEXT NOT NULL,
    reasoning       TEXT,
    ai_call_id      TEXT REFERENCES ai_calls (id) ON DELETE SET NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
