-- Rate limits enforced in the database, so they hold across instances: fixed windows of counts
-- keyed by what is limited (a user's requests or tokens per minute, failed logins of an account or
-- from an address), and per-user overrides of the configured defaults.

CREATE TABLE rate_counters (
    key          TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counters_window_idx ON rate_counters (window_start);

CREATE TABLE user_limits (
    user_id             TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    requests_per_minute BIGINT,
    tokens_per_minute   BIGINT,
    updated_at          TIMESTAMP NOT NULL
);
