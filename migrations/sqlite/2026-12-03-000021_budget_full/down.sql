-- Nothing on SQLite: its admission runs statement by statement on the one writer connection and
-- rolls back from the client (PostgreSQL's `cloudbase_budget_full` is for its one-flight
-- admission). The version is kept in step with PostgreSQL's.
SELECT 1;
