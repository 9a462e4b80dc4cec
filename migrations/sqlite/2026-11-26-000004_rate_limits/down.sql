DROP TABLE user_limits;
DROP TABLE rate_counters;
