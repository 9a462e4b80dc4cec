DROP TABLE usage_daily_users;
