-- The shards are summed back into one row each.

CREATE TABLE usage_daily_new (
    day TEXT NOT NULL,
    user_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    currency TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, api_key_id, provider, model, currency)
);
INSERT INTO usage_daily_new (day, user_id, api_key_id, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, user_id, api_key_id, provider, model, currency, SUM(requests), SUM(prompt_tokens), SUM(cached_prompt_tokens), SUM(completion_tokens), SUM(cost_micros) FROM usage_daily GROUP BY day, user_id, api_key_id, provider, model, currency;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_new RENAME TO usage_daily;
CREATE INDEX usage_daily_user_day_idx ON usage_daily (user_id, day);
CREATE INDEX usage_daily_key_day_idx ON usage_daily (api_key_id, day) WHERE api_key_id <> '';

CREATE TABLE usage_daily_users_new (
    day TEXT NOT NULL,
    user_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, currency)
);
INSERT INTO usage_daily_users_new (day, user_id, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, user_id, currency, SUM(requests), SUM(prompt_tokens), SUM(cached_prompt_tokens), SUM(completion_tokens), SUM(cost_micros) FROM usage_daily_users GROUP BY day, user_id, currency;
DROP TABLE usage_daily_users;
ALTER TABLE usage_daily_users_new RENAME TO usage_daily_users;
CREATE INDEX usage_daily_users_user_day_idx ON usage_daily_users (user_id, day);

CREATE TABLE usage_daily_models_new (
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    currency TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (day, provider, model, currency)
);
INSERT INTO usage_daily_models_new (day, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, provider, model, currency, SUM(requests), SUM(prompt_tokens), SUM(cached_prompt_tokens), SUM(completion_tokens), SUM(cost_micros) FROM usage_daily_models GROUP BY day, provider, model, currency;
DROP TABLE usage_daily_models;
ALTER TABLE usage_daily_models_new RENAME TO usage_daily_models;
