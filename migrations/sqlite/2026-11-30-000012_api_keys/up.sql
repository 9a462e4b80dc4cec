-- API keys: long-lived credentials for the OpenAI-compatible /v1 door (and, with scope FULL, the
-- GraphQL API). Only a SHA-256 of the secret is stored, with a short visible prefix. Keys are
-- revoked, never deleted, so the call records that name them keep their meaning.
CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY NOT NULL,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    prefix              TEXT NOT NULL,
    secret_hash         TEXT NOT NULL UNIQUE,
    scope               TEXT NOT NULL CHECK (scope IN ('CHAT', 'FULL')),
    -- A JSON array of `provider/model` names; NULL allows every model.
    allowed_models      TEXT,
    requests_per_minute BIGINT CHECK (requests_per_minute > 0),
    tokens_per_minute   BIGINT CHECK (tokens_per_minute > 0),
    created_at          TIMESTAMP NOT NULL,
    expires_at          TIMESTAMP,
    revoked_at          TIMESTAMP,
    last_used_at        TIMESTAMP,
    last_used_ip        TEXT,
    -- The first key of its rotation chain (its own id unless made by a rotation): a key's own
    -- budget and rate limits belong to the family, so a rotation keeps them.
    family_id           TEXT NOT NULL
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, id);

-- Which key made a call (NULL: a session).
ALTER TABLE ai_calls ADD COLUMN api_key_id TEXT REFERENCES api_keys (id);
CREATE INDEX ai_calls_key_idx ON ai_calls (api_key_id, id) WHERE api_key_id IS NOT NULL;

-- A key's own budget: a USER row of the key's owner that only the key's calls count against.
ALTER TABLE budgets ADD COLUMN api_key_id TEXT REFERENCES api_keys (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX budgets_key_idx ON budgets (api_key_id) WHERE api_key_id IS NOT NULL;

-- The per-user-and-model rollup gains the key ('' for calls without one), so reports can filter
-- and group by key. SQLite cannot change a primary key in place: the table is rebuilt.
CREATE TABLE usage_daily_new (
    day                  TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    api_key_id           TEXT NOT NULL DEFAULT '',
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    currency             TEXT NOT NULL,
    requests             BIGINT NOT NULL,
    prompt_tokens        BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens    BIGINT NOT NULL,
    cost_micros          BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, api_key_id, provider, model, currency)
);
INSERT INTO usage_daily_new
    (day, user_id, api_key_id, provider, model, currency, requests, prompt_tokens,
     cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, user_id, '', provider, model, currency, requests, prompt_tokens,
       cached_prompt_tokens, completion_tokens, cost_micros
FROM usage_daily;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_new RENAME TO usage_daily;
CREATE INDEX usage_daily_user_day_idx ON usage_daily (user_id, day);
CREATE INDEX usage_daily_key_day_idx ON usage_daily (api_key_id, day) WHERE api_key_id <> '';
