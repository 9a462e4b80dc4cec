-- The shards are summed back into one row each.
CREATE TEMPORARY TABLE folded_daily ON COMMIT DROP AS
SELECT day, user_id, api_key_id, provider, model, currency, SUM(requests) AS requests,
       SUM(prompt_tokens) AS prompt_tokens, SUM(cached_prompt_tokens) AS cached_prompt_tokens,
       SUM(completion_tokens) AS completion_tokens, SUM(cost_micros) AS cost_micros
FROM usage_daily GROUP BY day, user_id, api_key_id, provider, model, currency;
DELETE FROM usage_daily;
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily DROP COLUMN shard;
ALTER TABLE usage_daily ADD PRIMARY KEY (day, user_id, api_key_id, provider, model, currency);
INSERT INTO usage_daily (day, user_id, api_key_id, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, user_id, api_key_id, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros FROM folded_daily;

CREATE TEMPORARY TABLE folded_users ON COMMIT DROP AS
SELECT day, user_id, currency, SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens,
       SUM(cached_prompt_tokens) AS cached_prompt_tokens,
       SUM(completion_tokens) AS completion_tokens, SUM(cost_micros) AS cost_micros
FROM usage_daily_users GROUP BY day, user_id, currency;
DELETE FROM usage_daily_users;
ALTER TABLE usage_daily_users DROP CONSTRAINT usage_daily_users_pkey;
ALTER TABLE usage_daily_users DROP COLUMN shard;
ALTER TABLE usage_daily_users ADD PRIMARY KEY (day, user_id, currency);
INSERT INTO usage_daily_users (day, user_id, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, user_id, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros FROM folded_users;

CREATE TEMPORARY TABLE folded_models ON COMMIT DROP AS
SELECT day, provider, model, currency, SUM(requests) AS requests,
       SUM(prompt_tokens) AS prompt_tokens, SUM(cached_prompt_tokens) AS cached_prompt_tokens,
       SUM(completion_tokens) AS completion_tokens, SUM(cost_micros) AS cost_micros
FROM usage_daily_models GROUP BY day, provider, model, currency;
DELETE FROM usage_daily_models;
ALTER TABLE usage_daily_models DROP CONSTRAINT usage_daily_models_pkey;
ALTER TABLE usage_daily_models DROP COLUMN shard;
ALTER TABLE usage_daily_models ADD PRIMARY KEY (day, provider, model, currency);
INSERT INTO usage_daily_models (day, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros FROM folded_models;
