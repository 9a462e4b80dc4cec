DROP TABLE encryption_state;
DROP TABLE signing_keys;
