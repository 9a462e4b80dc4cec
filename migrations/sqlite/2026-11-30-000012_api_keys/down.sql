CREATE TABLE usage_daily_old (
    day                  TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    currency             TEXT NOT NULL,
    requests             BIGINT NOT NULL,
    prompt_tokens        BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens    BIGINT NOT NULL,
    cost_micros          BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, provider, model, currency)
);
INSERT INTO usage_daily_old
SELECT day, user_id, provider, model, currency, SUM(requests), SUM(prompt_tokens),
       SUM(cached_prompt_tokens), SUM(completion_tokens), SUM(cost_micros)
FROM usage_daily GROUP BY day, user_id, provider, model, currency;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_old RENAME TO usage_daily;
CREATE INDEX usage_daily_user_day_idx ON usage_daily (user_id, day);

DROP INDEX budgets_key_idx;
DELETE FROM budgets WHERE api_key_id IS NOT NULL;
ALTER TABLE budgets DROP COLUMN api_key_id;
DROP INDEX ai_calls_key_idx;
ALTER TABLE ai_calls DROP COLUMN api_key_id;
DROP TABLE api_keys;
