ALTER TABLE sessions DROP COLUMN last_used_ip;
ALTER TABLE sessions DROP COLUMN last_used_at;
