-- The bounds of a stock tick (docs/ARCHITECTURE.md H10, README "Limits"), enforced by the check
-- constraints of stock_ticks that 023_tick_bounds.sql built from lakets.stock_tick_limits(): the
-- constraints hold the values themselves, so changing a bound here needs a numbered migration that
-- rebuilds them too. Needs stock_ticks (010).

CREATE OR REPLACE FUNCTION lakets.stock_tick_limits(
    OUT min_price double precision, OUT max_price double precision,
    OUT min_volume double precision, OUT max_volume double precision,
    OUT min_time timestamptz)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 1e-12::float8, 1e12::float8, 0::float8, 1e15::float8, '1900-01-01 00:00:00+00'::timestamptz
$$;

-- The refusal of an out-of-bounds value: raised from the ELSE branch of a CHECK constraint, so a
-- valid row costs only the comparisons (CASE evaluates its branches in order) and a refused one gets
-- a message naming the column, the bound and the value, with the column and constraint in the
-- error's fields (node-pg: err.column, err.constraint).
CREATE OR REPLACE FUNCTION lakets.refuse_out_of_bounds(p_table text, p_column text, p_value text,
                                                       p_requirement text, p_constraint text, p_sqlstate text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION '% % of % is out of bounds: check constraint % requires %',
                    p_column, p_value, p_table, p_constraint, p_requirement
        USING ERRCODE = p_sqlstate, COLUMN = p_column, TABLE = p_table, CONSTRAINT = p_constraint,
              SCHEMA = 'public',
              HINT = 'The bounds of a tick are listed by lakets.stock_tick_limits() and in the README (Limits).';
END;
$$;
