-- Keys. `signing_keys`: the keys that sign and verify access tokens, each named by its `kid`.
-- A key signs from `signs_from` (the newest generation whose time has come signs) and verifies
-- until `verifies_until` (NULL: it is, or will be, the signer). An Ed25519 key's private half is
-- sealed with the master key (`cbx1:` envelope); the legacy HS256 row holds no secret (the secret
-- stays in the configuration) and only lets the tokens signed before the upgrade run out.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    generation     BIGINT NOT NULL UNIQUE,
    algorithm      TEXT NOT NULL,
    private_key    TEXT,
    public_key     TEXT,
    created_at     TIMESTAMP NOT NULL,
    signs_from     TIMESTAMP NOT NULL,
    verifies_until TIMESTAMP
);

-- Which master key new sealed values are written with (one row). The id is derived from the key
-- itself, so a database sealed under one key is never opened with another. `sealed_through`: the
-- key a complete re-seal pass last left every value under (a start skips the pass when it is the
-- key in use).
CREATE TABLE encryption_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    master_key_id  TEXT NOT NULL,
    changed_at     TIMESTAMP NOT NULL,
    sealed_through TEXT
);
