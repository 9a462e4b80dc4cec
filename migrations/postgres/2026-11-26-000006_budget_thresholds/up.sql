-- Soft thresholds: percentages of a budget's spend limit that raise a budget event once per
-- period (alerted_percent is the highest one raised in the current period; a new period resets it).
ALTER TABLE budgets ADD COLUMN thresholds TEXT NOT NULL DEFAULT '50,80,100';
ALTER TABLE budgets ADD COLUMN alerted_percent BIGINT NOT NULL DEFAULT 0;
