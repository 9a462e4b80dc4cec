-- When and from where a session was last used (written at most once a minute per session and
-- address, off the request path), for `mySessions`.
ALTER TABLE sessions ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE sessions ADD COLUMN last_used_ip TEXT;
