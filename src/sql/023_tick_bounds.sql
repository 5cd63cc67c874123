-- Bounds of a stock tick, enforced by the database so that no tick it accepts can break what reads
-- it: a rollup sum that overflows float8 stops every refresh, a price near float8's maximum becomes
-- the latest price, and a tick dated before the Gregorian calendar's practical range pins a chunk
-- that can never leave Postgres.
--
--   price   1e-12 <= price <= 1e12     finite and positive; the lower bound keeps every price ratio
--                                      (change in percent, high / low) finite and excludes subnormals
--   volume  0 <= volume <= 1e15        finite and non-negative
--   time    time >= 1900-01-01 UTC     (the upper side is the ChronoTable's guard: at most
--                                      now() + max_future_skew, itself capped at 1 day below)
--
-- Why nothing a refresh or a candle read computes can overflow within these bounds: every aggregate
-- over a bucket or a day is a max, min, first or last of prices (so within the price bounds), a
-- count (bigint, at most the number of rows: tick_id is a bigint sequence, so fewer than 2^63), or
-- a sum of volumes, at most 2^63 * 1e15 ~ 9.2e33, far below float8's 1.8e308. Nothing multiplies a
-- price by a volume in SQL; if a client does, 1e12 * 1e15 = 1e27 is still finite.
--
-- The bounds live in lakets.stock_tick_limits() (functions/010_stock_ticks.sql; README "Limits"
-- lists them too), and the constraints below are built from it when this migration runs.

-- Rows of an existing database that break the new bounds (accepted before this migration) are moved
-- here rather than failing the migration or staying to poison the rollups and the latest price. They
-- are deleted through stock_ticks, so the last value cache, the rollups (invalidated) and the lake
-- (a delete event) all follow.
CREATE TABLE IF NOT EXISTS lakets.quarantined_stock_ticks (
    time        timestamptz      NOT NULL,
    symbol      text             NOT NULL,
    price       double precision NOT NULL,
    volume      double precision NOT NULL,
    tick_id     bigint           NOT NULL,
    reason      text             NOT NULL,
    moved_at    timestamptz      NOT NULL DEFAULT now()
);

DO $$
DECLARE
    l record;
BEGIN
    SELECT * INTO l FROM lakets.stock_tick_limits();
    -- No write may slip in between the move and the constraints.
    LOCK TABLE public.stock_ticks IN ACCESS EXCLUSIVE MODE;

    WITH gone AS (
        DELETE FROM public.stock_ticks t
         WHERE NOT (t.price >= l.min_price AND t.price <= l.max_price)
            OR NOT (t.volume >= l.min_volume AND t.volume <= l.max_volume)
            OR NOT (t.time >= l.min_time)
        RETURNING t.*
    )
    INSERT INTO lakets.quarantined_stock_ticks (time, symbol, price, volume, tick_id, reason)
    SELECT g.time, g.symbol, g.price, g.volume, g.tick_id,
           concat_ws('; ',
               CASE WHEN NOT (g.price >= l.min_price AND g.price <= l.max_price) THEN format('price %s out of [%s, %s]', g.price, l.min_price, l.max_price) END,
               CASE WHEN NOT (g.volume >= l.min_volume AND g.volume <= l.max_volume) THEN format('volume %s out of [%s, %s]', g.volume, l.min_volume, l.max_volume) END,
               CASE WHEN NOT (g.time >= l.min_time) THEN format('time %s UTC before %s UTC', g.time AT TIME ZONE 'UTC', l.min_time AT TIME ZONE 'UTC') END)
      FROM gone g;

    -- The old checks (positive and finite only) are replaced by the bounded ones.
    ALTER TABLE public.stock_ticks DROP CONSTRAINT IF EXISTS stock_ticks_price_check;
    ALTER TABLE public.stock_ticks DROP CONSTRAINT IF EXISTS stock_ticks_volume_check;

    -- ">= min AND <= max" is false for NaN and for infinities, so they are refused too.
    EXECUTE format($c$
        ALTER TABLE public.stock_ticks
          ADD CONSTRAINT stock_ticks_price_bounds CHECK (
              CASE WHEN price >= %1$L::float8 AND price <= %2$L::float8 THEN true
                   ELSE lakets.refuse_out_of_bounds('stock_ticks', 'price', price::text,
                                                    %3$L, 'stock_ticks_price_bounds', '23514') END),
          ADD CONSTRAINT stock_ticks_volume_bounds CHECK (
              CASE WHEN volume >= %4$L::float8 AND volume <= %5$L::float8 THEN true
                   ELSE lakets.refuse_out_of_bounds('stock_ticks', 'volume', volume::text,
                                                    %6$L, 'stock_ticks_volume_bounds', '23514') END),
          ADD CONSTRAINT stock_ticks_time_bounds CHECK (
              CASE WHEN time >= %7$L::timestamptz THEN true
                   ELSE lakets.refuse_out_of_bounds('stock_ticks', 'time', (time AT TIME ZONE 'UTC')::text || ' UTC',
                                                    %8$L, 'stock_ticks_time_bounds', '22008') END)
        $c$,
        l.min_price, l.max_price, format('%s <= price <= %s', l.min_price, l.max_price),
        l.min_volume, l.max_volume, format('%s <= volume <= %s', l.min_volume, l.max_volume),
        l.min_time, format('time >= %s UTC', to_char(l.min_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')));
END;
$$;

-- The future side of the time range is the ChronoTable guard (statement triggers of 002): a tick
-- later than statement_timestamp() + max_future_skew is refused. The skew is capped at 1 day so
-- that every accepted tick is an ordinary near-present time whose chunk ages, tiers and drops.
DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN
        UPDATE lakets.chronotables
           SET max_future_skew = least(greatest(max_future_skew, interval '0'), interval '1 day')
         WHERE max_future_skew < interval '0' OR max_future_skew > interval '1 day'
        RETURNING table_name
    LOOP
        -- The guard bakes the skew into its trigger function.
        PERFORM lakets._install_chronotable_triggers(v_table);
    END LOOP;
END;
$$;

ALTER TABLE lakets.chronotables DROP CONSTRAINT IF EXISTS chronotables_max_future_skew_bounds;

ALTER TABLE lakets.chronotables
    ADD CONSTRAINT chronotables_max_future_skew_bounds
    CHECK (max_future_skew >= interval '0' AND max_future_skew <= interval '1 day');
