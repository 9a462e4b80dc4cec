-- Accounts hardening. Failed logins (and registrations) per key are logged in `rate_counters`, one
-- row per event time, which needs no change. The login throttle asks whether an address has signed
-- in to an account before, by its sessions.
CREATE INDEX sessions_user_client_ip_idx ON sessions (user_id, client_ip);
