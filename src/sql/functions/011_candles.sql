-- Candles over the OHLCV rollups of stock_ticks (docs/ARCHITECTURE.md §5, H4, H5): always-current
-- reads (candles, candles_filled) over the minute, hour and day rollups.
--
-- Each rollup row keeps, besides bucket, symbol, open, high, low, close, volume, tick_count, the
-- (time, tick_id) of its open and close ticks, so that open/close compose exactly upward: the
-- hour's open is the minute open with the smallest (open_time, open_tick_id), ties on tick time
-- breaking on tick_id as everywhere else. Needs the rollups and lakets.ohlcv_bar (011).

-- 'minute' | 'hour' | 'day' (any case), or an interval equal to one of the rollups' widths.
CREATE OR REPLACE FUNCTION lakets.ohlcv_rollup(p_granularity text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_interval interval;
    v_name text;
BEGIN
    CASE lower(trim(coalesce(p_granularity, '')))
        WHEN 'minute' THEN RETURN 'ohlcv_1min';
        WHEN 'hour' THEN RETURN 'ohlcv_1hour';
        WHEN 'day' THEN RETURN 'ohlcv_1day';
        ELSE NULL;
    END CASE;
    BEGIN
        v_interval := p_granularity::interval;
    EXCEPTION WHEN others THEN
        v_interval := NULL;
    END;
    SELECT r.name INTO v_name FROM lakets.rollups r
     WHERE r.bucket_interval = v_interval AND r.name IN ('ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day');
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'unknown candle granularity "%": use minute, hour or day', p_granularity
            USING ERRCODE = '22023';
    END IF;
    RETURN v_name;
END;
$$;

-- The bars of one OHLCV rollup for one symbol, bucket starts in [p_from, p_to) (aligned to the
-- rollup's width). Per bucket:
--   * materialised: closed (bucket end <= watermark) and no pending invalidation in the rollup or
--     in any rollup it reads  -> the stored row, final;
--   * live: past the watermark (the tail) or pending -> aggregated now, from the raw ticks for
--     minutes, from the bars one level down (themselves materialised or live) above, so an open
--     day costs ~24 hour rows + ~60 minute rows + the ticks since the last refresh.
-- STABLE: every statement reads the caller's snapshot, so the answer equals aggregating the raw
-- ticks of that snapshot exactly.
CREATE OR REPLACE FUNCTION lakets._ohlcv_plan(p_rollup text, p_symbol text, p_from timestamptz, p_to timestamptz,
                                               OUT split timestamptz, OUT live_old timestamptz[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- One statement (this runs on every read). Buckets before split are closed by the
    -- watermark; from split on is the live tail; live_old = pending buckets before split.
    SELECT w.split,
           coalesce((SELECT array_agg(DISTINCT date_bin(r.bucket_interval, i.bucket, '2000-01-01 00:00:00+00'))
                       FROM lakets.rollup_invalidations i
                      WHERE i.rollup = ANY (r.chain) AND i.key = p_symbol
                        AND i.bucket >= p_from AND i.bucket < w.split), '{}')
      INTO split, live_old
      FROM lakets.rollups r,
           LATERAL (SELECT least(greatest(coalesce(r.watermark, '-infinity'), p_from), p_to) AS split) w
     WHERE r.name = p_rollup;
    IF NOT FOUND THEN
        split := p_from;
        live_old := '{}';
    END IF;
END;
$$;

-- The live part of a read: the tail [p_split, p_to) and the pending buckets p_live_old.
CREATE OR REPLACE FUNCTION lakets._ohlcv_live(p_rollup text, p_symbol text, p_from timestamptz, p_to timestamptz,
                                              v_split timestamptz, v_live_old timestamptz[])
RETURNS SETOF lakets.ohlcv_bar LANGUAGE plpgsql STABLE AS $$
DECLARE
    r lakets.rollups;
BEGIN
    SELECT * INTO r FROM lakets.rollups WHERE name = p_rollup;
    IF v_split >= p_to AND cardinality(v_live_old) = 0 THEN
        RETURN;
    END IF;

    IF r.source_kind = 'rollup' THEN
        RETURN QUERY
        SELECT date_bin(r.bucket_interval, x.bucket, '2000-01-01 00:00:00+00'),
               lakets.first(x.open, x.open_time, x.open_tick_id), max(x.high), min(x.low),
               lakets.last(x.close, x.close_time, x.close_tick_id), sum(x.volume), sum(x.tick_count)::bigint,
               min(x.open_time), lakets.first(x.open_tick_id, x.open_time, x.open_tick_id),
               max(x.close_time), lakets.last(x.close_tick_id, x.close_time, x.close_tick_id), false
          FROM (SELECT c.* FROM lakets._ohlcv_bars(r.source, p_symbol, v_split, p_to) c WHERE v_split < p_to
                UNION ALL
                SELECT c.* FROM unnest(v_live_old) lb, LATERAL lakets._ohlcv_bars(r.source, p_symbol, lb, lb + r.bucket_interval) c) x
         GROUP BY 1;
    ELSIF NOT EXISTS (SELECT 1 FROM lakets.chunks ch
                       WHERE ch.table_name = r.source AND ch.status = 'dropped'
                         AND ch.range_start < p_to AND ch.range_end > p_from) THEN
        RETURN QUERY
        SELECT date_bin(r.bucket_interval, s.time, '2000-01-01 00:00:00+00'),
               lakets.first(s.price, s.time, s.tick_id), max(s.price), min(s.price),
               lakets.last(s.price, s.time, s.tick_id), sum(s.volume), count(*),
               min(s.time), lakets.first(s.tick_id, s.time, s.tick_id),
               max(s.time), lakets.last(s.tick_id, s.time, s.tick_id), false
          FROM (SELECT t.time, t.price, t.volume, t.tick_id FROM public.stock_ticks t
                 WHERE t.symbol = p_symbol AND t.time >= v_split AND t.time < p_to
                UNION ALL
                SELECT t.time, t.price, t.volume, t.tick_id FROM unnest(v_live_old) lb
                  JOIN public.stock_ticks t ON t.symbol = p_symbol AND t.time >= lb AND t.time < lb + r.bucket_interval) s
         GROUP BY 1;
    ELSE
        -- Some source rows of this window were dropped by retention (ARCHITECTURE.md H5): a live bucket over a
        -- dropped range is its sealed base (or, not sealed yet, the stored row as it stood at the
        -- drop) merged with the surviving ticks, exactly as the refresh will compute it.
        RETURN QUERY
        WITH live_ticks AS (
            SELECT date_bin(r.bucket_interval, s.time, '2000-01-01 00:00:00+00') AS bucket,
                   lakets.first(s.price, s.time, s.tick_id) AS open, max(s.price) AS high, min(s.price) AS low,
                   lakets.last(s.price, s.time, s.tick_id) AS close, sum(s.volume) AS volume, count(*) AS tick_count,
                   min(s.time) AS open_time, lakets.first(s.tick_id, s.time, s.tick_id) AS open_tick_id,
                   max(s.time) AS close_time, lakets.last(s.tick_id, s.time, s.tick_id) AS close_tick_id
              FROM (SELECT t.time, t.price, t.volume, t.tick_id FROM public.stock_ticks t
                     WHERE t.symbol = p_symbol AND t.time >= v_split AND t.time < p_to
                    UNION ALL
                    SELECT t.time, t.price, t.volume, t.tick_id FROM unnest(v_live_old) lb
                      JOIN public.stock_ticks t ON t.symbol = p_symbol AND t.time >= lb AND t.time < lb + r.bucket_interval) s
             GROUP BY 1
        ), dropped AS (
            SELECT g.bucket, (SELECT max(ch.id) FROM lakets.chunks ch
                               WHERE ch.table_name = r.source AND ch.status = 'dropped'
                                 AND ch.range_start < g.bucket + r.bucket_interval AND ch.range_end > g.bucket) AS chunk_id
              FROM (SELECT x.bucket FROM public.ohlcv_1min x
                     WHERE x.symbol = p_symbol AND x.bucket >= p_from AND x.bucket < p_to
                       AND (x.bucket >= v_split OR x.bucket = ANY (v_live_old))
                    UNION
                    SELECT bs.bucket FROM lakets._rollup_base_ohlcv_1min bs
                     WHERE bs.key = p_symbol AND bs.bucket >= p_from AND bs.bucket < p_to
                       AND (bs.bucket >= v_split OR bs.bucket = ANY (v_live_old))) g
        ), bases AS (
            SELECT (bs.base).bucket, (bs.base).open, (bs.base).high, (bs.base).low, (bs.base).close,
                   (bs.base).volume, (bs.base).tick_count, (bs.base).open_time, (bs.base).open_tick_id,
                   (bs.base).close_time, (bs.base).close_tick_id
              FROM dropped d JOIN lakets._rollup_base_ohlcv_1min bs ON bs.key = p_symbol AND bs.bucket = d.bucket
             WHERE d.chunk_id IS NOT NULL AND bs.sealed_chunk_id >= d.chunk_id AND (bs.base).bucket IS NOT NULL
            UNION ALL
            SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, x.open_time, x.open_tick_id,
                   x.close_time, x.close_tick_id
              FROM dropped d JOIN public.ohlcv_1min x ON x.symbol = p_symbol AND x.bucket = d.bucket
             WHERE d.chunk_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM lakets._rollup_base_ohlcv_1min bs
                                WHERE bs.key = p_symbol AND bs.bucket = d.bucket AND bs.sealed_chunk_id >= d.chunk_id)
        )
        SELECT u.bucket, lakets.first(u.open, u.open_time, u.open_tick_id), max(u.high), min(u.low),
               lakets.last(u.close, u.close_time, u.close_tick_id), sum(u.volume), sum(u.tick_count)::bigint,
               min(u.open_time), lakets.first(u.open_tick_id, u.open_time, u.open_tick_id),
               max(u.close_time), lakets.last(u.close_tick_id, u.close_time, u.close_tick_id), false
          FROM (SELECT * FROM live_ticks UNION ALL SELECT * FROM bases) u
         GROUP BY u.bucket;
    END IF;
END;
$$;

-- The bars of one OHLCV rollup for one symbol: materialised rows (static SQL, read in the
-- caller's query) + the live part. Inlined by the planner: no tuplestore on the hot path.
CREATE OR REPLACE FUNCTION lakets._ohlcv_bars(p_rollup text, p_symbol text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF lakets.ohlcv_bar LANGUAGE sql STABLE AS $$
    WITH p AS MATERIALIZED (SELECT * FROM lakets._ohlcv_plan(p_rollup, p_symbol, p_from, p_to))
    SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count,
           x.open_time, x.open_tick_id, x.close_time, x.close_tick_id, true
      FROM p, public.ohlcv_1min x
     WHERE p_rollup = 'ohlcv_1min' AND x.symbol = p_symbol AND x.bucket >= p_from AND x.bucket < p.split
       AND x.bucket <> ALL (p.live_old)
    UNION ALL
    SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count,
           x.open_time, x.open_tick_id, x.close_time, x.close_tick_id, true
      FROM p, public.ohlcv_1hour x
     WHERE p_rollup = 'ohlcv_1hour' AND x.symbol = p_symbol AND x.bucket >= p_from AND x.bucket < p.split
       AND x.bucket <> ALL (p.live_old)
    UNION ALL
    SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count,
           x.open_time, x.open_tick_id, x.close_time, x.close_tick_id, true
      FROM p, public.ohlcv_1day x
     WHERE p_rollup = 'ohlcv_1day' AND x.symbol = p_symbol AND x.bucket >= p_from AND x.bucket < p.split
       AND x.bucket <> ALL (p.live_old)
    UNION ALL
    SELECT l.* FROM p, LATERAL lakets._ohlcv_live(p_rollup, p_symbol, p_from, p_to, p.split, p.live_old) l
$$;

-- Everything a candle read decides before touching a bar, in ONE plpgsql call (its statements'
-- plans are cached per session): validates the read, aligns [p_from, p_to) to the rollup's bucket
-- starts [v_from, v_to), and splits it like _ohlcv_plan: buckets before split are closed by the
-- watermark, from split on is the live tail, live_old = pending buckets before split; live = there
-- is anything to aggregate on the fly.
CREATE OR REPLACE FUNCTION lakets._candle_plan(p_symbol text, p_granularity text, p_from timestamptz, p_to timestamptz,
                                               OUT rollup text, OUT v_from timestamptz, OUT v_to timestamptz,
                                               OUT split timestamptz, OUT live_old timestamptz[], OUT live boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_width interval;
    v_chain text[];
    v_watermark timestamptz;
BEGIN
    rollup := lakets.ohlcv_rollup(p_granularity);
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
        RAISE EXCEPTION 'candles: invalid range [%, %)', p_from, p_to USING ERRCODE = '22023';
    END IF;
    SELECT r.bucket_interval, r.chain, r.watermark INTO v_width, v_chain, v_watermark
      FROM lakets.rollups r WHERE r.name = rollup;
    v_from := lakets.time_bucket_ceil(v_width, p_from);
    v_to := lakets.time_bucket_ceil(v_width, p_to);
    split := least(greatest(coalesce(v_watermark, '-infinity'), v_from), v_to);
    SELECT coalesce(array_agg(DISTINCT date_bin(v_width, i.bucket, '2000-01-01 00:00:00+00')), '{}')
      INTO live_old
      FROM lakets.rollup_invalidations i
     WHERE i.rollup = ANY (v_chain) AND i.key = p_symbol AND i.bucket >= v_from AND i.bucket < split;
    live := split < v_to OR cardinality(live_old) > 0;
END;
$$;

-- Always-current candles (docs/ARCHITECTURE.md §5, H4): bucket starts in [p_from, p_to) (inclusive
-- from, exclusive to), ascending. Equal to aggregating the raw ticks; final = the bucket is closed
-- (at or before the rollup's watermark) and nothing is pending for it. This is the hot read path
-- (bench/candles.ts): PL/pgSQL, so the statements' plans are cached per session, with a fast path
-- for settled ranges (the read the front end makes most: a past day, a past week): when nothing in
-- the range is live (no open bucket, no pending invalidation) the stored bars come straight from
-- the (symbol, bucket) index; otherwise the stored bars before the watermark except re-opened
-- ones, plus the live aggregate (_ohlcv_live).
CREATE OR REPLACE FUNCTION lakets.candles(p_symbol text, p_granularity text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    p record;
BEGIN
    SELECT * INTO p FROM lakets._candle_plan(p_symbol, p_granularity, p_from, p_to);
    IF NOT p.live THEN
        -- Settled: split = the range's end and nothing re-opened.
        IF p.rollup = 'ohlcv_1min' THEN
            RETURN QUERY SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, true
                           FROM public.ohlcv_1min x
                          WHERE x.symbol = p_symbol AND x.bucket >= p.v_from AND x.bucket < p.split
                          ORDER BY x.bucket;
        ELSIF p.rollup = 'ohlcv_1hour' THEN
            RETURN QUERY SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, true
                           FROM public.ohlcv_1hour x
                          WHERE x.symbol = p_symbol AND x.bucket >= p.v_from AND x.bucket < p.split
                          ORDER BY x.bucket;
        ELSE
            RETURN QUERY SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, true
                           FROM public.ohlcv_1day x
                          WHERE x.symbol = p_symbol AND x.bucket >= p.v_from AND x.bucket < p.split
                          ORDER BY x.bucket;
        END IF;
        RETURN;
    END IF;
    -- Live: stored bars before the watermark except re-opened ones, plus the live aggregate.
    RETURN QUERY
    SELECT b.bucket, b.open, b.high, b.low, b.close, b.volume, b.tick_count, b.final
      FROM (
          SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, true AS final
            FROM public.ohlcv_1min x
           WHERE p.rollup = 'ohlcv_1min' AND x.symbol = p_symbol AND x.bucket >= p.v_from AND x.bucket < p.split
             AND x.bucket <> ALL (p.live_old)
          UNION ALL
          SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, true
            FROM public.ohlcv_1hour x
           WHERE p.rollup = 'ohlcv_1hour' AND x.symbol = p_symbol AND x.bucket >= p.v_from AND x.bucket < p.split
             AND x.bucket <> ALL (p.live_old)
          UNION ALL
          SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, true
            FROM public.ohlcv_1day x
           WHERE p.rollup = 'ohlcv_1day' AND x.symbol = p_symbol AND x.bucket >= p.v_from AND x.bucket < p.split
             AND x.bucket <> ALL (p.live_old)
          UNION ALL
          SELECT l.bucket, l.open, l.high, l.low, l.close, l.volume, l.tick_count, l.final
            FROM lakets._ohlcv_live(p.rollup, p_symbol, p.v_from, p.v_to, p.split, p.live_old) l
      ) b
     ORDER BY b.bucket;
END;
$$;

-- Candles with gaps filled (GraphQL fill: PREVIOUS): one row per bucket start in [p_from, p_to);
-- an empty bucket repeats the previous close as open = high = low = close with volume 0 and
-- tick_count 0 (filled = true). Buckets before the first known price are left out.
CREATE OR REPLACE FUNCTION lakets.candles_filled(p_symbol text, p_granularity text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean, filled boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_rollup text := lakets.ohlcv_rollup(p_granularity);
    r lakets.rollups;
    v_from timestamptz;
    v_prev double precision;
    v_pending timestamptz[];
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
        RAISE EXCEPTION 'candles_filled: invalid range [%, %)', p_from, p_to USING ERRCODE = '22023';
    END IF;
    SELECT * INTO r FROM lakets.rollups x WHERE x.name = v_rollup;
    v_from := lakets.time_bucket_ceil(r.bucket_interval, p_from);
    -- The close before the window: the last tick by (time, tick_id), or the stored minute bar
    -- when the ticks have been dropped by retention.
    SELECT t.price INTO v_prev FROM public.stock_ticks t
     WHERE t.symbol = p_symbol AND t.time < v_from ORDER BY t.time DESC, t.tick_id DESC LIMIT 1;
    IF v_prev IS NULL THEN
        SELECT m.close INTO v_prev FROM public.ohlcv_1min m
         WHERE m.symbol = p_symbol AND m.bucket < v_from ORDER BY m.bucket DESC LIMIT 1;
    END IF;
    SELECT coalesce(array_agg(DISTINCT date_bin(r.bucket_interval, i.bucket, '2000-01-01 00:00:00+00')), '{}')
      INTO v_pending
      FROM lakets.rollup_invalidations i
     WHERE i.rollup = ANY (lakets._rollup_chain(v_rollup)) AND i.key = p_symbol
       AND i.bucket >= v_from AND i.bucket < p_to;
    RETURN QUERY
    WITH c AS (SELECT * FROM lakets.candles(p_symbol, p_granularity, p_from, p_to)),
    g AS (
        SELECT s AS bucket, c.open, c.high, c.low, c.close, c.volume, c.tick_count, c.final,
               lakets.locf(c.close, v_prev) OVER (ORDER BY s) AS carried
          FROM lakets.time_bucket_gapfill(r.bucket_interval, p_from, p_to) s
          LEFT JOIN c ON c.bucket = s
    )
    SELECT g.bucket,
           coalesce(g.open, g.carried), coalesce(g.high, g.carried), coalesce(g.low, g.carried),
           coalesce(g.close, g.carried), coalesce(g.volume, 0), coalesce(g.tick_count, 0),
           coalesce(g.final, coalesce(g.bucket + r.bucket_interval <= r.watermark, false) AND g.bucket <> ALL (v_pending)),
           g.open IS NULL
      FROM g
     WHERE g.carried IS NOT NULL
     ORDER BY g.bucket;
END;
$$;
