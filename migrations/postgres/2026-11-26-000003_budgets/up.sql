-- Budgets that cannot be overspent: a call reserves its worst-case cost with one conditional
-- UPDATE per applicable budget at admission, and settles (release the reservation, add the
-- actual cost) in the transaction that finishes its record. Reservations expire, so a crash
-- cannot hold money forever. usage_daily is the rollup reports read.

CREATE TABLE budgets (
    id                 TEXT PRIMARY KEY,
    scope              TEXT NOT NULL CHECK (scope IN ('USER', 'GLOBAL')),
    user_id            TEXT REFERENCES users (id) ON DELETE CASCADE,
    period             TEXT NOT NULL CHECK (period IN ('DAY', 'WEEK', 'MONTH', 'TOTAL')),
    currency           TEXT NOT NULL,
    limit_micros       BIGINT NOT NULL CHECK (limit_micros >= 0),
    limit_tokens       BIGINT CHECK (limit_tokens >= 0),
    limit_requests     BIGINT CHECK (limit_requests >= 0),
    spent_micros       BIGINT NOT NULL DEFAULT 0,
    reserved_micros    BIGINT NOT NULL DEFAULT 0,
    spent_tokens       BIGINT NOT NULL DEFAULT 0,
    reserved_tokens    BIGINT NOT NULL DEFAULT 0,
    spent_requests     BIGINT NOT NULL DEFAULT 0,
    reserved_requests  BIGINT NOT NULL DEFAULT 0,
    period_start       TIMESTAMP NOT NULL,
    period_end         TIMESTAMP,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    CHECK ((scope = 'USER') = (user_id IS NOT NULL))
);
CREATE INDEX budgets_user_idx ON budgets (user_id);

CREATE TABLE budget_reservations (
    ai_call_id      TEXT NOT NULL REFERENCES ai_calls (id) ON DELETE CASCADE,
    budget_id       TEXT NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    amount_micros   BIGINT NOT NULL,
    tokens          BIGINT NOT NULL,
    requests        BIGINT NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (ai_call_id, budget_id)
);
CREATE INDEX budget_reservations_expires_idx ON budget_reservations (expires_at);

CREATE TABLE usage_daily (
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
CREATE INDEX usage_daily_user_day_idx ON usage_daily (user_id, day);
