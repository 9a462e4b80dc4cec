DROP TABLE usage_daily;
DROP TABLE budget_reservations;
DROP TABLE budgets;
