-- The team-wide daily rollup: the same sums as usage_daily without the user dimension, so a
-- report across all users reads at most days x models rows, however many calls and users.

CREATE TABLE usage_daily_models (
    day                  TEXT NOT NULL,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    currency             TEXT NOT NULL,
    requests             BIGINT NOT NULL,
    prompt_tokens        BIGINT NOT NULL,
    cached_prompt_tokens BIGINT NOT NULL,
    completion_tokens    BIGINT NOT NULL,
    cost_micros          BIGINT NOT NULL,
    PRIMARY KEY (day, provider, model, currency)
);
