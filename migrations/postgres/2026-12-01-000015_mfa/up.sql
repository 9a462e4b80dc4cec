-- Two-step sign-in with TOTP (RFC 6238). `mfa_enabled_at` is on `users` so that the check every
-- request makes (and the access cache) sees it with the role in one read.
ALTER TABLE users ADD COLUMN mfa_enabled_at TIMESTAMP;

-- The TOTP secret (base32) of a user: pending until `users.mfa_enabled_at` is set by a confirmed
-- code, in use after. `last_step` is the last time step a code was accepted for: a code of that
-- step or an earlier one is refused, so no code works twice.
CREATE TABLE mfa_secrets (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_step  BIGINT
);

-- Single-use recovery codes; only a SHA-256 of each is stored.
CREATE TABLE mfa_recovery_codes (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id, code_hash);

-- The second step of a login: the password was right, a code is still owed. Keyed by a SHA-256 of
-- the challenge the client holds; used once, dead after `expires_at` or too many wrong codes.
CREATE TABLE mfa_challenges (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    used_at    TIMESTAMP
);
CREATE INDEX mfa_challenges_expiry_idx ON mfa_challenges (expires_at);
