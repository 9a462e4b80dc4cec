DROP TABLE usage_daily_models;
