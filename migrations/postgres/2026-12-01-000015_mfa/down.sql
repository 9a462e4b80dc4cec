DROP TABLE mfa_challenges;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_secrets;
ALTER TABLE users DROP COLUMN mfa_enabled_at;
