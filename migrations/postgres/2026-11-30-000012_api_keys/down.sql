DROP INDEX usage_daily_key_day_idx;
CREATE TEMPORARY TABLE usage_daily_sums AS
SELECT day, user_id, provider, model, currency, SUM(requests)::BIGINT AS requests,
       SUM(prompt_tokens)::BIGINT AS prompt_tokens, SUM(cached_prompt_tokens)::BIGINT AS cached_prompt_tokens,
       SUM(completion_tokens)::BIGINT AS completion_tokens, SUM(cost_micros)::BIGINT AS cost_micros
FROM usage_daily GROUP BY day, user_id, provider, model, currency;
DELETE FROM usage_daily;
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily DROP COLUMN api_key_id;
ALTER TABLE usage_daily ADD PRIMARY KEY (day, user_id, provider, model, currency);
INSERT INTO usage_daily SELECT * FROM usage_daily_sums;
DROP TABLE usage_daily_sums;

DELETE FROM budgets WHERE api_key_id IS NOT NULL;
ALTER TABLE budgets DROP COLUMN api_key_id;
ALTER TABLE ai_calls DROP COLUMN api_key_id;
DROP TABLE api_keys;
