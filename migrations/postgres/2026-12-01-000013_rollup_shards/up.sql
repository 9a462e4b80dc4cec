-- The daily rollups are split into shards: a call adds itself to one of 16 rows of its day, user,
-- key, model and currency (chosen in turn by each instance), and reports sum the shards. With one
-- row, every call finishing at the same time waited for the row lock of the one before it, held
-- until that call's commit reached the disk: at 32 concurrent calls, 12 of 16 connections waited
-- on it (bench/RESULTS.md). Rows written before keep shard 0.
ALTER TABLE usage_daily ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily ADD PRIMARY KEY (day, user_id, api_key_id, provider, model, currency, shard);

ALTER TABLE usage_daily_users ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_users DROP CONSTRAINT usage_daily_users_pkey;
ALTER TABLE usage_daily_users ADD PRIMARY KEY (day, user_id, currency, shard);

ALTER TABLE usage_daily_models ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_models DROP CONSTRAINT usage_daily_models_pkey;
ALTER TABLE usage_daily_models ADD PRIMARY KEY (day, provider, model, currency, shard);
