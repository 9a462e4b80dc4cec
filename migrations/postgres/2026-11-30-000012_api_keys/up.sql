-- API keys: long-lived credentials for the OpenAI-compatible /v1 door (and, with scope FULL, the
-- GraphQL API). Only a SHA-256 of the secret is stored, with a short visible prefix. Keys are
-- revoked, never deleted, so the call records that name them keep their meaning.
CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
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
-- and group by key.
ALTER TABLE usage_daily ADD COLUMN api_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily ADD PRIMARY KEY (day, user_id, api_key_id, provider, model, currency);
CREATE INDEX usage_daily_key_day_idx ON usage_daily (api_key_id, day) WHERE api_key_id <> '';
