-- System logs: warn-and-above events and named business events, written in batches by the
-- server's log writer. `id` is a UUIDv7, so it sorts by time and serves as the cursor;
-- `batch_id` names the write that stored the row (live subscribers read a batch by it).
CREATE TABLE system_logs (
    id         TEXT PRIMARY KEY,
    at         TIMESTAMP NOT NULL,
    level      TEXT NOT NULL,
    source     TEXT NOT NULL,
    message    TEXT NOT NULL,
    fields     TEXT NOT NULL,
    request_id TEXT,
    batch_id   TEXT NOT NULL
);
CREATE INDEX system_logs_at_idx ON system_logs (at);
CREATE INDEX system_logs_batch_idx ON system_logs (batch_id);
CREATE INDEX system_logs_level_idx ON system_logs (level, id);

-- Alert rules. `params` holds the kind's settings (JSON), `targets` the notifier instances
-- (JSON array of {channel, to}). `owner_id` is set on a user's own (budget) rule.
-- `last_fired_at`: when any of its alerts last fired.
CREATE TABLE alert_rules (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    params        TEXT NOT NULL,
    targets       TEXT NOT NULL,
    cooldown_secs BIGINT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    owner_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    last_fired_at TIMESTAMP,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
CREATE INDEX alert_rules_owner_idx ON alert_rules (owner_id);

-- Whether a rule is firing for one subject (a provider, a plugin on a node, a budget period,
-- or `*`). Transitions are compare-and-set updates on this row, so each happens once across
-- instances. `last_fired_at` is the subject's cooldown clock; `suppressed`: it started firing
-- within the cooldown, so neither it nor its recovery was sent.
CREATE TABLE alert_states (
    rule_id       TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject       TEXT NOT NULL,
    firing        BOOLEAN NOT NULL,
    suppressed    BOOLEAN NOT NULL,
    changed_at    TIMESTAMP NOT NULL,
    last_fired_at TIMESTAMP,
    PRIMARY KEY (rule_id, subject)
);

-- Alerts sent: a rule started firing (FIRING) or stopped (RESOLVED).
CREATE TABLE alerts (
    id       TEXT PRIMARY KEY,
    rule_id  TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    owner_id TEXT,
    subject  TEXT NOT NULL,
    state    TEXT NOT NULL,
    severity TEXT NOT NULL,
    title    TEXT NOT NULL,
    body     TEXT NOT NULL,
    at       TIMESTAMP NOT NULL
);
CREATE INDEX alerts_rule_idx ON alerts (rule_id, id);
CREATE INDEX alerts_owner_idx ON alerts (owner_id, id);

-- One delivery of an alert to one target, retried with backoff up to a bound.
-- status: PENDING (due at next_attempt_at), SENDING (claimed until claimed_until), DELIVERED, FAILED.
CREATE TABLE alert_deliveries (
    id              TEXT PRIMARY KEY,
    alert_id        TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    recipient       TEXT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    last_error      TEXT,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until   TIMESTAMP,
    delivered_at    TIMESTAMP
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (status, next_attempt_at);
CREATE INDEX alert_deliveries_alert_idx ON alert_deliveries (alert_id);

-- Named leases: one instance at a time holds each (the alert evaluator's, for one).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- Provider health and provider alert rules read a provider's recent calls.
CREATE INDEX ai_calls_provider_started_idx ON ai_calls (provider, started_at);
