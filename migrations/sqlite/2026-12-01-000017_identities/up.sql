-- Sign-in identities from outside (WeChat mini-program `openid`s): each signs in its user.
-- `union_id` is WeChat's `unionid` when given (the same person across a developer's apps).
CREATE TABLE user_identities (
    provider     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    union_id     TEXT,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE UNIQUE INDEX user_identities_user_idx ON user_identities (user_id, provider);
CREATE INDEX user_identities_union_idx ON user_identities (provider, union_id);
