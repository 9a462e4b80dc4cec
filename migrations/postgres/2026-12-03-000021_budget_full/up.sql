-- A budget without room for a call stops the transaction that asked, from inside a statement.
-- A call's admission on PostgreSQL is one flight of statements, `BEGIN` to `COMMIT`, pipelined
-- (`schema/src/db/flight.rs`): the client cannot read a reservation's result and decide to roll
-- back before the `COMMIT` is sent, so the reservation's `UPDATE` calls this function where the
-- budget has no room. The error aborts the transaction and the flight's `COMMIT` rolls it back;
-- the hint says what it is and the detail names the budget.
CREATE FUNCTION cloudbase_budget_full(budget TEXT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'budget % has no room for this call', budget
        USING ERRCODE = 'CB001', DETAIL = budget, HINT = 'cloudbase_budget_full';
END
$$;
