DROP TABLE password_resets;
ALTER TABLE users DROP COLUMN password_change_required_at;
