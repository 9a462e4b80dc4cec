-- The per-user daily rollup without the model: what a report by user (the cost dashboard's top
-- users) reads, at most days x users rows, instead of days x users x models in usage_daily.
-- Filled from usage_daily here, then kept in the transaction that settles each call.

CREATE TABLE usage_daily_users (
    day                  TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    currency             TEXT NOT NULL,
    requests             BIGINT NOT NULL,
    prompt_tokens        BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens    BIGINT NOT NULL,
    cost_micros          BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, currency)
);

-- One user's days (a user's usage and statements), as on usage_daily.
CREATE INDEX usage_daily_users_user_day_idx ON usage_daily_users (user_id, day);

INSERT INTO usage_daily_users
    (day, user_id, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros)
SELECT day, user_id, currency, SUM(requests), SUM(prompt_tokens), SUM(cached_prompt_tokens),
       SUM(completion_tokens), SUM(cost_micros)
FROM usage_daily
GROUP BY day, user_id, currency;
