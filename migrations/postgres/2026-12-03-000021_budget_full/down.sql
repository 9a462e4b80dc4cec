DROP FUNCTION cloudbase_budget_full(TEXT);
