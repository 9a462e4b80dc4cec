ALTER TABLE budgets DROP COLUMN alerted_percent;
ALTER TABLE budgets DROP COLUMN thresholds;
