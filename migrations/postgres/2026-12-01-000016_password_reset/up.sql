-- Set when an admin requires a new password: until the account changes it, it may only do that.
ALTER TABLE users ADD COLUMN password_change_required_at TIMESTAMP;

-- Password reset links sent by email: only a SHA-256 of the token is stored (the id); used once,
-- valid until `expires_at` (30 minutes).
CREATE TABLE password_resets (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    used_at      TIMESTAMP,
    requested_ip TEXT
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
CREATE INDEX password_resets_expiry_idx ON password_resets (expires_at);
