-- Nothing on PostgreSQL: it compares a value with an `IN` list of constants without building
-- anything (SQLite's rebuilt CHECKs are for SQLite's `IN`). The version is kept in step with SQLite's.
SELECT 1;
