-- The product's RollUps (docs/ARCHITECTURE.md §5): OHLCV candles at minute, hour and day over
-- stock_ticks. The reads over them (lakets.candles, candles_filled) are in functions/011_candles.sql.

-- One bar of a candle read, with the composition keys and whether it is final.
DO $$
BEGIN
    IF to_regtype('lakets.ohlcv_bar') IS NULL THEN
        CREATE TYPE lakets.ohlcv_bar AS (
            bucket timestamptz, open double precision, high double precision, low double precision,
            close double precision, volume double precision, tick_count bigint,
            open_time timestamptz, open_tick_id bigint, close_time timestamptz, close_tick_id bigint,
            final boolean);
    END IF;
END;
$$;

DO $$
DECLARE
    -- Re-aggregates OHLCV rows (of a rollup's own shape) into buckets of width %1$s.
    v_combine constant text := $q$
        SELECT date_bin(%1$L::interval, bucket, '2000-01-01 00:00:00+00') AS bucket, symbol,
               lakets.first(open, open_time, open_tick_id) AS open, max(high) AS high, min(low) AS low,
               lakets.last(close, close_time, close_tick_id) AS close,
               sum(volume) AS volume, sum(tick_count)::bigint AS tick_count,
               min(open_time) AS open_time, lakets.first(open_tick_id, open_time, open_tick_id) AS open_tick_id,
               max(close_time) AS close_time, lakets.last(close_tick_id, close_time, close_tick_id) AS close_tick_id
          FROM %2$s GROUP BY 1, 2$q$;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM lakets.rollups WHERE name = 'ohlcv_1min') THEN
        PERFORM lakets.create_rollup('ohlcv_1min', 'stock_ticks', interval '1 minute', $q$
            SELECT date_bin('1 minute'::interval, time, '2000-01-01 00:00:00+00') AS bucket, symbol,
                   lakets.first(price, time, tick_id) AS open, max(price) AS high, min(price) AS low,
                   lakets.last(price, time, tick_id) AS close,
                   sum(volume) AS volume, count(*) AS tick_count,
                   min(time) AS open_time, lakets.first(tick_id, time, tick_id) AS open_tick_id,
                   max(time) AS close_time, lakets.last(tick_id, time, tick_id) AS close_tick_id
              FROM {source} AS t GROUP BY 1, 2$q$,
            NULL, 'symbol',
            format(v_combine, '1 minute', '{rows} AS r'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM lakets.rollups WHERE name = 'ohlcv_1hour') THEN
        PERFORM lakets.create_rollup('ohlcv_1hour', 'ohlcv_1min', interval '1 hour',
            format(v_combine, '1 hour', '{source} AS r'), ARRAY['ohlcv_1min'], 'symbol',
            format(v_combine, '1 hour', '{rows} AS r'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM lakets.rollups WHERE name = 'ohlcv_1day') THEN
        PERFORM lakets.create_rollup('ohlcv_1day', 'ohlcv_1hour', interval '1 day',
            format(v_combine, '1 day', '{source} AS r'), ARRAY['ohlcv_1hour'], 'symbol',
            format(v_combine, '1 day', '{rows} AS r'));
    END IF;
END;
$$;
