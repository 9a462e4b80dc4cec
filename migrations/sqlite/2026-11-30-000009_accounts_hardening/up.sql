-- Accounts hardening. Failed logins and registrations per address are logged in `rate_counters`,
-- one row per event time, which needs no change.

-- Invites: in `[auth] registration = "invite"` mode an account can only be registered with a code
-- an admin created. Only the SHA-256 of the code is stored; a code works once (`used_at`), until
-- it expires or is revoked.
CREATE TABLE invites (
    id         TEXT PRIMARY KEY NOT NULL,
    code_hash  TEXT NOT NULL UNIQUE,
    note       TEXT,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    used_by    TEXT REFERENCES users (id) ON DELETE SET NULL,
    used_at    TIMESTAMP,
    revoked_at TIMESTAMP
);

-- The login throttle asks whether an address has signed in to an account before, by its sessions.
CREATE INDEX sessions_user_client_ip_idx ON sessions (user_id, client_ip);
