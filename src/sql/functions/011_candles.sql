-- Candles over the OHLCV rollups of stock_ticks (docs/ARCHITECTURE.md §5, H4, H5): bars of any size
-- (a multiple of minutes or hours, or calendar days, weeks and months in a time zone), always
-- current and exact, paged by bars, for one symbol or a watch-list.
--
-- How a bar is built. A bar [s, e) is cut into pieces at the coarsest rollup that fits: whole UTC
-- days inside it come from ohlcv_1day, whole hours around them from ohlcv_1hour, the minutes at its
-- edges from ohlcv_1min (a Kolkata day: 30 minutes, 23 hours, 30 minutes; a New York week: hours up
-- to the first UTC midnight, six days, hours after the last). Each piece is a stored row unless an
-- invalidation is pending for it in its rollup or any rollup below (rollups.chain): then it is cut
-- one level finer, down to the raw ticks of the pending minutes. A rollup stores and logs only
-- closed buckets (before its watermark): from there on (its open tail, lakets._candle_tails) a
-- piece is cut finer too, and open minutes are aggregated from the ticks. Before the tail a stored
-- row with nothing pending is exact: a write into a closed bucket logs it in the same transaction,
-- a refresh recomputes a claimed bucket in a later statement than its claim, and a bucket is closed
-- from a snapshot that holds every write the log did not see (the refresh waits for the writers
-- that read the old log horizon), so a tick a refresh did not see is still pending. The pieces of a bar are disjoint in time, so its open is the open of
-- its earliest piece and its close the close of its latest: composing needs no (time, tick_id)
-- comparison, only built-in aggregates (min/max over [epoch, price] arrays).
--
-- Bucket starts are whole minutes: MINUTE and HOUR sizes are aligned to 2000-01-01T00:00Z (the zone
-- plays no part), calendar sizes start at local midnight (lakets.zone_day_start), weeks on Monday,
-- months on the 1st with multiples aligned to January. Needs the rollups and lakets.ohlcv_bar (011).

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

-- ---------------------------------------------------------------------------------------------
-- Bar sizes

-- Refuses a size the reads cannot serve (22023, naming the argument): unit minute | hour | day |
-- week | month; a multiple that divides an hour (minutes), a day (hours), 1 (days, weeks) or is
-- 1, 3, 6 or 12 (months); a time zone Postgres knows (calendar units only).
CREATE OR REPLACE FUNCTION lakets.candle_check_size(p_unit text, p_multiple integer, p_zone text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_unit IS NULL OR p_unit NOT IN ('minute', 'hour', 'day', 'week', 'month') THEN
        RAISE EXCEPTION 'candles: unknown granularity "%": use minute, hour, day, week or month', p_unit
            USING ERRCODE = '22023', DETAIL = 'argument: granularity';
    END IF;
    IF p_multiple IS NULL OR p_multiple < 1 OR (CASE p_unit
            WHEN 'minute' THEN 60 % p_multiple <> 0
            WHEN 'hour' THEN 24 % p_multiple <> 0
            WHEN 'month' THEN p_multiple NOT IN (1, 3, 6, 12)
            ELSE p_multiple <> 1 END) THEN
        RAISE EXCEPTION 'candles: % is not a valid multiple of %', p_multiple, p_unit
            USING ERRCODE = '22023', DETAIL = 'argument: multiple';
    END IF;
    IF p_unit IN ('day', 'week', 'month') THEN
        IF p_zone IS NULL THEN
            RAISE EXCEPTION 'candles: a time zone is needed for % bars', p_unit USING ERRCODE = '22023', DETAIL = 'argument: timeZone';
        END IF;
        PERFORM now() AT TIME ZONE p_zone; -- 22023 for a zone Postgres does not know
    END IF;
END;
$$;

-- The local date on which the bar containing local date p_date starts.
CREATE OR REPLACE FUNCTION lakets._candle_period_date(p_unit text, p_multiple integer, p_date date) RETURNS date
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    CASE p_unit
        WHEN 'week' THEN RETURN p_date - (extract(isodow FROM p_date)::integer - 1);
        WHEN 'month' THEN RETURN make_date(extract(year FROM p_date)::integer,
                                           ((extract(month FROM p_date)::integer - 1) / p_multiple) * p_multiple + 1, 1);
        ELSE RETURN p_date;
    END CASE;
END;
$$;

-- The start of the bar of this size that contains p_ts (in the minute of p_ts). Every helper here
-- is PL/pgSQL or plain expressions: a SQL function the planner cannot inline would be planned
-- again on every call, and these run once per bar.
CREATE OR REPLACE FUNCTION lakets.candle_bucket(p_unit text, p_multiple integer, p_zone text, p_ts timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_date date;
BEGIN
    CASE p_unit
        WHEN 'minute' THEN
            RETURN date_bin(make_interval(mins => p_multiple), p_ts, '2000-01-01 00:00:00+00');
        WHEN 'hour' THEN
            RETURN date_bin(make_interval(hours => p_multiple), p_ts, '2000-01-01 00:00:00+00');
        ELSE
            v_date := (date_bin(interval '1 minute', p_ts, '2000-01-01 00:00:00+00') AT TIME ZONE p_zone)::date;
            v_date := lakets._candle_period_date(p_unit, p_multiple, v_date);
            RETURN lakets.zone_day_start(v_date, p_zone);
    END CASE;
END;
$$;

-- The start of the bar after the one starting at p_start (its end). A local date that does not
-- exist (a zone skipping a day) is skipped.
CREATE OR REPLACE FUNCTION lakets.candle_bucket_next(p_unit text, p_multiple integer, p_zone text, p_start timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_date date;
    v_next timestamptz;
BEGIN
    CASE p_unit
        WHEN 'minute' THEN RETURN p_start + make_interval(mins => p_multiple);
        WHEN 'hour' THEN RETURN p_start + make_interval(hours => p_multiple);
        ELSE
            v_date := lakets._candle_period_date(p_unit, p_multiple, (p_start AT TIME ZONE p_zone)::date);
            FOR i IN 1 .. 4 LOOP
                v_date := CASE p_unit WHEN 'day' THEN v_date + 1 WHEN 'week' THEN v_date + 7
                                      ELSE (v_date + make_interval(months => p_multiple))::date END;
                v_next := lakets.zone_day_start(v_date, p_zone);
                IF v_next > p_start THEN
                    RETURN v_next;
                END IF;
            END LOOP;
            RAISE EXCEPTION 'candles: no bar after % in %', p_start, p_zone USING ERRCODE = '22023';
    END CASE;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Exact pieces

-- Where the open tail of each rollup starts: its buckets from there on are neither stored nor
-- logged (the watermark; '-infinity' before the first refresh). An hour is open while any of its
-- minutes is, a day while any of its hours is, whatever the coarser rollup's own watermark says.
CREATE OR REPLACE FUNCTION lakets._candle_tails(OUT t_min timestamptz, OUT t_hour timestamptz, OUT t_day timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_min timestamptz;
    v_hour timestamptz;
    v_day timestamptz;
BEGIN
    SELECT max(r.watermark) FILTER (WHERE r.name = 'ohlcv_1min'), max(r.watermark) FILTER (WHERE r.name = 'ohlcv_1hour'),
           max(r.watermark) FILTER (WHERE r.name = 'ohlcv_1day')
      INTO v_min, v_hour, v_day
      FROM lakets.rollups r WHERE r.name IN ('ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day');
    t_min := coalesce(v_min, '-infinity');
    t_hour := CASE WHEN v_min IS NULL OR v_hour IS NULL THEN '-infinity'
                   ELSE least(v_hour, date_bin(interval '1 hour', v_min, '2000-01-01 00:00:00+00')) END;
    t_day := CASE WHEN t_hour = '-infinity' OR v_day IS NULL THEN '-infinity'
                  ELSE least(v_day, date_bin(interval '1 day', t_hour, '2000-01-01 00:00:00+00')) END;
END;
$$;

-- Up to p_n buckets of width p_width (a minute or an hour) holding ticks of a symbol in
-- [p_lo, p_hi), the newest (or with p_forward the oldest) first: one (symbol, time) index probe per
-- bucket, whatever the gaps. The open tail's buckets, which no rollup holds yet.
CREATE OR REPLACE FUNCTION lakets._candle_tick_buckets(p_symbol text, p_width interval, p_lo timestamptz, p_hi timestamptz,
                                                       p_n integer, p_forward boolean)
RETURNS SETOF timestamptz LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    -- PL/pgSQL with a generic plan: planning the probes over every chunk of the tick table costs
    -- far more than running them (chunks are pruned when the plan starts), so the plan is made once
    -- per session and kept; a SQL function's body would be planned on every call.
    IF p_lo >= p_hi OR p_n < 1 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH RECURSIVE walk(b) AS (
        SELECT date_bin(p_width, CASE WHEN p_forward
                                      THEN (SELECT min(t.time) FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time >= p_lo AND t.time < p_hi)
                                      ELSE (SELECT max(t.time) FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time >= p_lo AND t.time < p_hi) END,
                        '2000-01-01 00:00:00+00')
        UNION ALL
        SELECT date_bin(p_width, CASE WHEN p_forward
                                      THEN (SELECT min(t.time) FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time >= w.b + p_width AND t.time < p_hi)
                                      ELSE (SELECT max(t.time) FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time >= p_lo AND t.time < w.b) END,
                        '2000-01-01 00:00:00+00')
          FROM walk w WHERE w.b IS NOT NULL
    )
    SELECT w.b FROM walk w WHERE w.b IS NOT NULL LIMIT p_n;
END;
$$;

-- Minute bars computed from the raw ticks of p_minutes. Built-in aggregates, then the open and
-- close ticks looked up by their time (ties broken on tick_id): no per-tick PL/pgSQL. Where a
-- source chunk of these minutes was dropped by retention (H5), a minute is its sealed base (or
-- its stored row as it stood at the drop) merged with the surviving ticks, exactly as the refresh
-- will compute it.
CREATE OR REPLACE FUNCTION lakets._candle_live_minutes(p_symbol text, p_minutes tstzmultirange)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_dropped boolean;
BEGIN
    IF isempty(p_minutes) THEN
        RETURN;
    END IF;
    SELECT EXISTS (SELECT 1 FROM unnest(p_minutes) r, lakets.chunks ch
                    WHERE ch.table_name = 'stock_ticks' AND ch.status = 'dropped'
                      AND ch.range_end > lower(r) AND ch.range_start < upper(r))
      INTO v_dropped;
    IF NOT v_dropped THEN
        RETURN QUERY
        SELECT a.b,
               (SELECT t.price FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time = a.open_time
                 ORDER BY t.tick_id LIMIT 1),
               a.high, a.low,
               (SELECT t.price FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time = a.close_time
                 ORDER BY t.tick_id DESC LIMIT 1),
               a.volume, a.n
          FROM (SELECT date_bin(interval '1 minute', t.time, '2000-01-01 00:00:00+00') AS b,
                       min(t.time) AS open_time, max(t.time) AS close_time,
                       max(t.price) AS high, min(t.price) AS low, sum(t.volume) AS volume, count(*) AS n
                  FROM unnest(p_minutes) r
                  JOIN public.stock_ticks t ON t.symbol = p_symbol AND t.time >= lower(r) AND t.time < upper(r)
                 GROUP BY 1) a;
        RETURN;
    END IF;
    RETURN QUERY
    WITH live_ticks AS (
        SELECT date_bin(interval '1 minute', s.time, '2000-01-01 00:00:00+00') AS bucket,
               lakets.first(s.price, s.time, s.tick_id) AS open, max(s.price) AS high, min(s.price) AS low,
               lakets.last(s.price, s.time, s.tick_id) AS close, sum(s.volume) AS volume, count(*) AS tick_count,
               min(s.time) AS open_time, lakets.first(s.tick_id, s.time, s.tick_id) AS open_tick_id,
               max(s.time) AS close_time, lakets.last(s.tick_id, s.time, s.tick_id) AS close_tick_id
          FROM unnest(p_minutes) r
          JOIN public.stock_ticks s ON s.symbol = p_symbol AND s.time >= lower(r) AND s.time < upper(r)
         GROUP BY 1
    ), minutes AS (
        SELECT g AS bucket FROM unnest(p_minutes) r,
               generate_series(lower(r), upper(r) - interval '1 minute', interval '1 minute') g
    ), dropped AS (
        SELECT m.bucket, (SELECT max(ch.id) FROM lakets.chunks ch
                           WHERE ch.table_name = 'stock_ticks' AND ch.status = 'dropped'
                             AND ch.range_start < m.bucket + interval '1 minute' AND ch.range_end > m.bucket) AS chunk_id
          FROM minutes m
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
           lakets.last(u.close, u.close_time, u.close_tick_id), sum(u.volume), sum(u.tick_count)::bigint
      FROM (SELECT * FROM live_ticks UNION ALL SELECT * FROM bases) u
     GROUP BY u.bucket;
END;
$$;

-- The exact pieces of the given ranges of days, hours and minutes (disjoint, whole buckets of each
-- rollup), as rows of mixed widths: stored rows with nothing pending, pending days cut into hours,
-- pending hours into minutes, pending minutes aggregated from the ticks. `live` = the piece is not
-- a stored row of its own rollup with nothing pending (the bar it belongs to is not final).
CREATE OR REPLACE FUNCTION lakets._candle_components(p_symbol text, p_days tstzmultirange, p_hours tstzmultirange,
                                                     p_minutes tstzmultirange)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, live boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_all tstzmultirange := p_days + p_hours + p_minutes;
    v_pd tstzmultirange;
    v_ph tstzmultirange;
    v_pm tstzmultirange;
    v_hours tstzmultirange;
    v_minutes tstzmultirange;
    v_tails record := lakets._candle_tails();
BEGIN
    IF isempty(v_all) THEN
        RETURN;
    END IF;
    -- What is pending over the span, in one read of the log: a day is pending if anything in it is
    -- (its chain: day, hour, minute), an hour if its hour or a minute is, a minute if it is.
    SELECT coalesce(range_agg(tstzrange(date_bin(interval '1 day', i.bucket, '2000-01-01 00:00:00+00'),
                                        date_bin(interval '1 day', i.bucket, '2000-01-01 00:00:00+00') + interval '1 day')), '{}'),
           coalesce(range_agg(tstzrange(date_bin(interval '1 hour', i.bucket, '2000-01-01 00:00:00+00'),
                                        date_bin(interval '1 hour', i.bucket, '2000-01-01 00:00:00+00') + interval '1 hour'))
                              FILTER (WHERE i.rollup <> 'ohlcv_1day'), '{}'),
           coalesce(range_agg(tstzrange(i.bucket, i.bucket + interval '1 minute')) FILTER (WHERE i.rollup = 'ohlcv_1min'), '{}')
      INTO v_pd, v_ph, v_pm
      FROM (SELECT DISTINCT l.rollup, l.bucket FROM lakets.rollup_invalidations l
             WHERE l.rollup IN ('ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day') AND l.key = p_symbol
               AND l.bucket >= date_bin(interval '1 day', lower(v_all), '2000-01-01 00:00:00+00')
               AND l.bucket < upper(v_all)) i;
    -- The open tails: nothing stored there yet.
    v_pd := v_pd + tstzmultirange(tstzrange(v_tails.t_day, NULL));
    v_ph := v_ph + tstzmultirange(tstzrange(v_tails.t_hour, NULL));
    v_pm := v_pm + tstzmultirange(tstzrange(v_tails.t_min, NULL));
    v_pd := v_pd * p_days;
    v_hours := p_hours + v_pd;
    v_ph := v_ph * v_hours;
    v_minutes := p_minutes + v_ph;
    v_pm := v_pm * v_minutes;
    RETURN QUERY
    SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, false
      FROM unnest(p_days) r
      JOIN public.ohlcv_1day x ON x.symbol = p_symbol AND x.bucket >= lower(r) AND x.bucket < upper(r)
     WHERE NOT x.bucket <@ v_pd
    UNION ALL
    SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, x.bucket <@ v_pd
      FROM unnest(v_hours) r
      JOIN public.ohlcv_1hour x ON x.symbol = p_symbol AND x.bucket >= lower(r) AND x.bucket < upper(r)
     WHERE NOT x.bucket <@ v_ph
    UNION ALL
    SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count, x.bucket <@ v_ph
      FROM unnest(v_minutes) r
      JOIN public.ohlcv_1min x ON x.symbol = p_symbol AND x.bucket >= lower(r) AND x.bucket < upper(r)
     WHERE NOT x.bucket <@ v_pm
    UNION ALL
    SELECT l.bucket, l.open, l.high, l.low, l.close, l.volume, l.tick_count, true
      FROM lakets._candle_live_minutes(p_symbol, v_pm) l;
END;
$$;

-- The bars of one symbol whose buckets are [p_starts[i], p_ends[i]) (ascending, disjoint), empty
-- ones left out, ascending. final = the bar ended at or before p_watermark (the minute rollup's:
-- everything before it had closed at the last refresh) and none of its pieces was pending.
CREATE OR REPLACE FUNCTION lakets._candle_compose(p_symbol text, p_starts timestamptz[], p_ends timestamptz[],
                                                  p_watermark timestamptz, p_level integer)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_days tstzmultirange;
    v_hours tstzmultirange;
    v_minutes tstzmultirange;
    v_ranges tstzmultirange;
    v_width interval;
BEGIN
    IF coalesce(cardinality(p_starts), 0) = 0 THEN
        RETURN;
    END IF;
    IF p_level IS NOT NULL THEN
        -- Bars of one rollup's width or a multiple of it that divides the next one (5 minutes, 4
        -- hours): whole buckets of that rollup.
        SELECT coalesce(range_agg(tstzrange(t.s, t.e)), '{}') INTO v_ranges FROM unnest(p_starts, p_ends) t(s, e);
        v_days := CASE WHEN p_level = 2 THEN v_ranges ELSE '{}' END;
        v_hours := CASE WHEN p_level = 1 THEN v_ranges ELSE '{}' END;
        v_minutes := CASE WHEN p_level = 0 THEN v_ranges ELSE '{}' END;
    ELSE
        -- Each bar [s, e) in pieces at the coarsest rollup that fits: whole UTC days [ds, de)
        -- inside it, whole hours [hs, he) around them, minutes at the edges; merged per rollup
        -- across bars. (OFFSET 0 keeps each step a value computed once per bar, rather than an
        -- expression the planner would copy into every use.)
        SELECT coalesce(range_agg(tstzrange(p.lo, p.hi)) FILTER (WHERE p.level = 2), '{}'),
               coalesce(range_agg(tstzrange(p.lo, p.hi)) FILTER (WHERE p.level = 1), '{}'),
               coalesce(range_agg(tstzrange(p.lo, p.hi)) FILTER (WHERE p.level = 0), '{}')
          INTO v_days, v_hours, v_minutes
          FROM unnest(p_starts, p_ends) t(s, e),
               LATERAL (SELECT CASE WHEN date_bin(interval '1 hour', t.s, '2000-01-01 00:00:00+00') = t.s THEN t.s
                                    ELSE date_bin(interval '1 hour', t.s, '2000-01-01 00:00:00+00') + interval '1 hour' END AS hs,
                               date_bin(interval '1 hour', t.e, '2000-01-01 00:00:00+00') AS he OFFSET 0) h,
               LATERAL (SELECT CASE WHEN h.hs >= h.he THEN NULL
                                    WHEN date_bin(interval '1 day', h.hs, '2000-01-01 00:00:00+00') = h.hs THEN h.hs
                                    ELSE date_bin(interval '1 day', h.hs, '2000-01-01 00:00:00+00') + interval '1 day' END AS ds,
                               CASE WHEN h.hs < h.he THEN date_bin(interval '1 day', h.he, '2000-01-01 00:00:00+00') END AS de
                         OFFSET 0) d,
               LATERAL (VALUES (0, t.s, CASE WHEN h.hs < h.he THEN h.hs ELSE t.e END),
                               (0, CASE WHEN h.hs < h.he THEN h.he END, t.e),
                               (1, h.hs, CASE WHEN d.ds < d.de THEN d.ds ELSE h.he END),
                               (1, CASE WHEN d.ds < d.de THEN d.de END, h.he),
                               (2, d.ds, d.de)) p(level, lo, hi)
         WHERE p.lo < p.hi;
    END IF;
    IF p_level IS NOT NULL THEN
        -- Fixed widths: a piece's bar is its date_bin.
        v_width := p_ends[1] - p_starts[1];
        RETURN QUERY
        SELECT date_bin(v_width, c.bucket, '2000-01-01 00:00:00+00'),
               (min(ARRAY[date_part('epoch', c.bucket), c.open]))[2], max(c.high), min(c.low),
               (max(ARRAY[date_part('epoch', c.bucket), c.close]))[2], sum(c.volume), sum(c.tick_count)::bigint,
               coalesce(date_bin(v_width, c.bucket, '2000-01-01 00:00:00+00') + v_width <= p_watermark, false) AND NOT bool_or(c.live)
          FROM lakets._candle_components(p_symbol, v_days, v_hours, v_minutes) c
         GROUP BY 1
         ORDER BY 1;
        RETURN;
    END IF;
    -- Calendar bars: a piece's bar is found among the bars' starts (a binary search).
    RETURN QUERY
    SELECT p_starts[w.g],
           (min(ARRAY[date_part('epoch', c.bucket), c.open]))[2], max(c.high), min(c.low),
           (max(ARRAY[date_part('epoch', c.bucket), c.close]))[2], sum(c.volume), sum(c.tick_count)::bigint,
           coalesce(p_ends[w.g] <= p_watermark, false) AND NOT bool_or(c.live)
      FROM lakets._candle_components(p_symbol, v_days, v_hours, v_minutes) c,
           LATERAL (SELECT width_bucket(c.bucket, p_starts) AS g) w
     GROUP BY w.g
     ORDER BY w.g;
END;
$$;

-- The rollup whose whole buckets make up every bar of a MINUTE or HOUR size (0 = minutes,
-- 1 = hours, 2 = days); NULL for calendar sizes, whose bars are cut into pieces.
CREATE OR REPLACE FUNCTION lakets._candle_level(p_unit text, p_multiple integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN CASE WHEN p_unit = 'minute' THEN CASE WHEN p_multiple = 60 THEN 1 ELSE 0 END
                WHEN p_unit = 'hour' THEN CASE WHEN p_multiple = 24 THEN 2 ELSE 1 END END;
END;
$$;

-- The ends of the bars starting at p_starts.
CREATE OR REPLACE FUNCTION lakets._candle_ends(p_unit text, p_multiple integer, p_zone text, p_starts timestamptz[])
RETURNS timestamptz[] LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_width interval := CASE p_unit WHEN 'minute' THEN make_interval(mins => p_multiple)
                                    WHEN 'hour' THEN make_interval(hours => p_multiple) END;
BEGIN
    IF v_width IS NOT NULL THEN
        RETURN ARRAY(SELECT s + v_width FROM unnest(p_starts) WITH ORDINALITY u(s, o) ORDER BY o);
    END IF;
    RETURN ARRAY(SELECT lakets.candle_bucket_next(p_unit, p_multiple, p_zone, s) FROM unnest(p_starts) WITH ORDINALITY u(s, o) ORDER BY o);
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Finding bars: which buckets may hold ticks

-- At most this many buckets that only look as if they held ticks are passed over by one search
-- (see _candle_search); a search that meets more stops there.
CREATE OR REPLACE FUNCTION lakets._candle_max_skipped() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 20000 $$;

-- Whether [p_lo, p_hi) of a symbol holds a tick, or may still be held by a chunk retention dropped
-- (whose bucket is then its sealed base merged with what survives).
CREATE OR REPLACE FUNCTION lakets._candle_may_hold(p_symbol text, p_lo timestamptz, p_hi timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM public.stock_ticks t WHERE t.symbol = p_symbol AND t.time >= p_lo AND t.time < p_hi)
        OR EXISTS (SELECT 1 FROM lakets.chunks ch WHERE ch.table_name = 'stock_ticks' AND ch.status = 'dropped'
                      AND ch.range_end > p_lo AND ch.range_start < p_hi);
END;
$$;

-- Buckets of a rollup (p_level 'minute' or 'hour') that may hold ticks of a symbol: its stored
-- rows and its pending invalidations (a write into a closed bucket logs it), and in its open tail
-- (nothing stored or logged there yet) the buckets holding ticks. The newest (or, forward, the
-- oldest) p_n distinct ones in [p_lo, p_hi).
--
-- A bucket whose ticks were all deleted still looks like that until the next refresh: its row
-- and its invalidation are there. With p_validate, a pending bucket counts only if it still holds
-- a tick (or a dropped chunk's sealed rows): a probe per pending bucket, so it is the second
-- attempt, after a first one found buckets without bars.
CREATE OR REPLACE FUNCTION lakets._candle_candidates(p_level text, p_symbol text, p_lo timestamptz, p_hi timestamptz,
                                                     p_n integer, p_forward boolean, p_validate boolean DEFAULT false)
RETURNS SETOF timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_table text := CASE p_level WHEN 'minute' THEN 'ohlcv_1min' ELSE 'ohlcv_1hour' END;
    v_width interval := CASE p_level WHEN 'minute' THEN interval '1 minute' ELSE interval '1 hour' END;
    v_tails record := lakets._candle_tails();
    v_tail timestamptz;
    v_pending integer;
BEGIN
    v_tail := greatest(p_lo, CASE p_level WHEN 'minute' THEN v_tails.t_min ELSE v_tails.t_hour END);
    IF p_validate THEN
        -- Only pending buckets can be empty: read as many more as there are of them.
        SELECT count(DISTINCT l.bucket) INTO v_pending FROM lakets.rollup_invalidations l
         WHERE l.rollup = v_table AND l.key = p_symbol AND l.bucket >= p_lo AND l.bucket < p_hi;
        RETURN QUERY EXECUTE format($q$
            SELECT u.b FROM ((SELECT x.bucket AS b FROM public.%1$I x
                               WHERE x.symbol = $1 AND x.bucket >= $2 AND x.bucket < least($3, $7) ORDER BY x.bucket %2$s LIMIT $4)
                             UNION
                             (SELECT DISTINCT l.bucket FROM lakets.rollup_invalidations l
                               WHERE l.rollup = %1$L AND l.key = $1 AND l.bucket >= $2 AND l.bucket < least($3, $7)
                               ORDER BY l.bucket %2$s LIMIT $4)
                             UNION
                             (SELECT tb FROM lakets._candle_tick_buckets($1, $5, $7, $3, $6, %3$L) tb)) u
             WHERE NOT EXISTS (SELECT 1 FROM lakets.rollup_invalidations l WHERE l.rollup = %1$L AND l.key = $1 AND l.bucket = u.b)
                OR lakets._candle_may_hold($1, u.b, u.b + $5)
             ORDER BY u.b %2$s LIMIT $6$q$,
            v_table, CASE WHEN p_forward THEN 'ASC' ELSE 'DESC' END, p_forward)
        USING p_symbol, p_lo, p_hi, p_n + least(v_pending, lakets._candle_max_skipped()), v_width, p_n, v_tail;
        RETURN;
    END IF;
    -- The common path in static statements (plans kept for the session), one per rollup and direction.
    IF p_level = 'minute' AND NOT p_forward THEN
        RETURN QUERY
        SELECT u.b FROM ((SELECT x.bucket AS b FROM public.ohlcv_1min x
                           WHERE x.symbol = p_symbol AND x.bucket >= p_lo AND x.bucket < least(p_hi, v_tail) ORDER BY x.bucket DESC LIMIT p_n)
                         UNION
                         (SELECT DISTINCT i.bucket FROM lakets.rollup_invalidations i
                           WHERE i.rollup = 'ohlcv_1min' AND i.key = p_symbol AND i.bucket >= p_lo AND i.bucket < least(p_hi, v_tail)
                           ORDER BY i.bucket DESC LIMIT p_n)
                         UNION
                         (SELECT tb FROM lakets._candle_tick_buckets(p_symbol, v_width, v_tail, p_hi, p_n, false) tb)) u
         ORDER BY u.b DESC LIMIT p_n;
    ELSIF p_level = 'minute' THEN
        RETURN QUERY
        SELECT u.b FROM ((SELECT x.bucket AS b FROM public.ohlcv_1min x
                           WHERE x.symbol = p_symbol AND x.bucket >= p_lo AND x.bucket < least(p_hi, v_tail) ORDER BY x.bucket LIMIT p_n)
                         UNION
                         (SELECT DISTINCT i.bucket FROM lakets.rollup_invalidations i
                           WHERE i.rollup = 'ohlcv_1min' AND i.key = p_symbol AND i.bucket >= p_lo AND i.bucket < least(p_hi, v_tail)
                           ORDER BY i.bucket LIMIT p_n)
                         UNION
                         (SELECT tb FROM lakets._candle_tick_buckets(p_symbol, v_width, v_tail, p_hi, p_n, true) tb)) u
         ORDER BY u.b LIMIT p_n;
    ELSIF NOT p_forward THEN
        RETURN QUERY
        SELECT u.b FROM ((SELECT x.bucket AS b FROM public.ohlcv_1hour x
                           WHERE x.symbol = p_symbol AND x.bucket >= p_lo AND x.bucket < least(p_hi, v_tail) ORDER BY x.bucket DESC LIMIT p_n)
                         UNION
                         (SELECT DISTINCT i.bucket FROM lakets.rollup_invalidations i
                           WHERE i.rollup = 'ohlcv_1hour' AND i.key = p_symbol AND i.bucket >= p_lo AND i.bucket < least(p_hi, v_tail)
                           ORDER BY i.bucket DESC LIMIT p_n)
                         UNION
                         (SELECT tb FROM lakets._candle_tick_buckets(p_symbol, v_width, v_tail, p_hi, p_n, false) tb)) u
         ORDER BY u.b DESC LIMIT p_n;
    ELSE
        RETURN QUERY
        SELECT u.b FROM ((SELECT x.bucket AS b FROM public.ohlcv_1hour x
                           WHERE x.symbol = p_symbol AND x.bucket >= p_lo AND x.bucket < least(p_hi, v_tail) ORDER BY x.bucket LIMIT p_n)
                         UNION
                         (SELECT DISTINCT i.bucket FROM lakets.rollup_invalidations i
                           WHERE i.rollup = 'ohlcv_1hour' AND i.key = p_symbol AND i.bucket >= p_lo AND i.bucket < least(p_hi, v_tail)
                           ORDER BY i.bucket LIMIT p_n)
                         UNION
                         (SELECT tb FROM lakets._candle_tick_buckets(p_symbol, v_width, v_tail, p_hi, p_n, true) tb)) u
         ORDER BY u.b LIMIT p_n;
    END IF;
END;
$$;

-- Up to p_need buckets of this size that may hold ticks of a symbol, with starts in [p_lo, p_hi)
-- (NULL: unbounded): the newest ones, or with p_forward the oldest. `starts` ascending;
-- `exhausted` = there is no other such bucket further on. The work is bounded by p_need whatever
-- the gaps: MINUTE and HOUR sizes read at most p_need x multiple candidate rows of their rollup;
-- calendar sizes walk from bucket to bucket, each step two index probes for the nearest minute
-- that may hold ticks. With p_validate, buckets whose ticks were deleted (not yet refreshed) are
-- passed over (at most _candle_max_skipped() of them), so every bucket found holds a bar.
CREATE OR REPLACE FUNCTION lakets._candle_search(p_symbol text, p_unit text, p_multiple integer, p_zone text,
                                                 p_forward boolean, p_lo timestamptz, p_hi timestamptz, p_need integer,
                                                 p_validate boolean DEFAULT false,
                                                 OUT starts timestamptz[], OUT exhausted boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_width interval;
    v_lo timestamptz;
    v_hi timestamptz;
    v_n integer;
    v_found integer;
    v_x timestamptz;
    v_m timestamptz;
    v_s timestamptz;
    v_skipped integer := 0;
    v_out timestamptz[] := '{}';
    v_tail timestamptz := (lakets._candle_tails()).t_min;
BEGIN
    IF p_unit IN ('minute', 'hour') THEN
        v_width := CASE p_unit WHEN 'minute' THEN make_interval(mins => p_multiple) ELSE make_interval(hours => p_multiple) END;
        -- Bars whose start is in [p_lo, p_hi), as whole buckets of the rollup.
        v_lo := CASE WHEN p_lo IS NULL THEN '-infinity' ELSE lakets.time_bucket_ceil(v_width, p_lo) END;
        v_hi := CASE WHEN p_hi IS NULL THEN 'infinity' ELSE lakets.time_bucket_ceil(v_width, p_hi) END;
        v_n := p_need * p_multiple;
        WITH c AS MATERIALIZED (
            SELECT b FROM lakets._candle_candidates(p_unit, p_symbol, v_lo, v_hi, v_n, p_forward, p_validate) b
        ), t AS (
            SELECT DISTINCT date_bin(v_width, c.b, '2000-01-01 00:00:00+00') AS s FROM c
        )
        SELECT (SELECT count(*) FROM c)::integer,
               ARRAY(SELECT k.s FROM (SELECT t.s FROM t ORDER BY CASE WHEN p_forward THEN t.s END,
                                                               CASE WHEN NOT p_forward THEN t.s END DESC
                                       LIMIT p_need) k ORDER BY k.s),
               (SELECT count(*) FROM t)::integer
          INTO v_found, starts, v_n;
        -- Fewer candidates than asked for: none is left beyond them (unless more buckets than
        -- needed were found, and the search stopped inside them).
        exhausted := v_found < p_need * p_multiple AND v_n <= p_need;
        RETURN;
    END IF;

    -- Calendar sizes: walk.
    IF NOT p_forward THEN
        v_x := CASE WHEN p_hi IS NULL THEN 'infinity'
                    ELSE lakets.candle_bucket_next(p_unit, p_multiple, p_zone,
                             lakets.candle_bucket(p_unit, p_multiple, p_zone, p_hi - interval '1 microsecond')) END;
    ELSE
        v_s := lakets.candle_bucket(p_unit, p_multiple, p_zone, p_lo);
        v_x := CASE WHEN v_s < p_lo THEN lakets.candle_bucket_next(p_unit, p_multiple, p_zone, v_s) ELSE v_s END;
    END IF;
    WHILE cardinality(v_out) < p_need LOOP
        -- The nearest minute that may hold ticks: a stored row or a pending invalidation before
        -- the minute rollup's open tail, a minute holding ticks in it.
        IF NOT p_forward THEN
            v_m := greatest((SELECT max(x.bucket) FROM public.ohlcv_1min x
                              WHERE x.symbol = p_symbol AND x.bucket < least(v_x, v_tail) AND x.bucket >= coalesce(p_lo, '-infinity')),
                            (SELECT max(l.bucket) FROM lakets.rollup_invalidations l
                              WHERE l.rollup = 'ohlcv_1min' AND l.key = p_symbol AND l.bucket < least(v_x, v_tail)
                                AND l.bucket >= coalesce(p_lo, '-infinity')),
                            (SELECT date_bin(interval '1 minute', max(t.time), '2000-01-01 00:00:00+00') FROM public.stock_ticks t
                              WHERE t.symbol = p_symbol AND t.time < v_x AND t.time >= greatest(coalesce(p_lo, '-infinity'), v_tail)));
        ELSE
            v_m := least((SELECT min(x.bucket) FROM public.ohlcv_1min x
                           WHERE x.symbol = p_symbol AND x.bucket >= v_x AND x.bucket < least(coalesce(p_hi, 'infinity'), v_tail)),
                         (SELECT min(l.bucket) FROM lakets.rollup_invalidations l
                           WHERE l.rollup = 'ohlcv_1min' AND l.key = p_symbol AND l.bucket >= v_x
                             AND l.bucket < least(coalesce(p_hi, 'infinity'), v_tail)),
                         (SELECT date_bin(interval '1 minute', min(t.time), '2000-01-01 00:00:00+00') FROM public.stock_ticks t
                           WHERE t.symbol = p_symbol AND t.time >= greatest(v_x, v_tail) AND t.time < coalesce(p_hi, 'infinity')));
        END IF;
        EXIT WHEN v_m IS NULL;
        IF p_validate AND EXISTS (SELECT 1 FROM lakets.rollup_invalidations l
                                   WHERE l.rollup = 'ohlcv_1min' AND l.key = p_symbol AND l.bucket = v_m)
           AND NOT lakets._candle_may_hold(p_symbol, v_m, v_m + interval '1 minute') THEN
            -- Its ticks were deleted: look past it.
            v_skipped := v_skipped + 1;
            IF v_skipped > lakets._candle_max_skipped() THEN
                starts := ARRAY(SELECT s FROM unnest(v_out) s ORDER BY s);
                exhausted := false;
                RETURN;
            END IF;
            v_x := CASE WHEN p_forward THEN v_m + interval '1 minute' ELSE v_m END;
            CONTINUE;
        END IF;
        v_s := lakets.candle_bucket(p_unit, p_multiple, p_zone, v_m);
        EXIT WHEN (NOT p_forward AND v_s < coalesce(p_lo, '-infinity')) OR (p_forward AND v_s >= coalesce(p_hi, 'infinity'));
        v_out := v_out || v_s;
        v_x := CASE WHEN p_forward THEN lakets.candle_bucket_next(p_unit, p_multiple, p_zone, v_s) ELSE v_s END;
    END LOOP;
    starts := ARRAY(SELECT s FROM unnest(v_out) s ORDER BY s);
    exhausted := cardinality(v_out) < p_need;
END;
$$;

-- The p_count consecutive buckets of this size ending with the one that starts at p_last
-- (backward) or starting with p_first (forward, stopping before p_hi), ascending.
CREATE OR REPLACE FUNCTION lakets._candle_run(p_unit text, p_multiple integer, p_zone text, p_forward boolean,
                                              p_anchor timestamptz, p_hi timestamptz, p_count integer)
RETURNS timestamptz[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_out timestamptz[] := '{}';
    v_s timestamptz := p_anchor;
BEGIN
    FOR i IN 1 .. p_count LOOP
        IF p_forward THEN
            EXIT WHEN v_s >= coalesce(p_hi, 'infinity');
            v_out := v_out || v_s;
            v_s := lakets.candle_bucket_next(p_unit, p_multiple, p_zone, v_s);
        ELSE
            v_out := v_out || v_s;
            EXIT WHEN v_s <= '1900-01-01 00:00:00+00';
            v_s := lakets.candle_bucket(p_unit, p_multiple, p_zone, v_s - interval '1 minute');
        END IF;
    END LOOP;
    RETURN ARRAY(SELECT s FROM unnest(v_out) s ORDER BY s);
END;
$$;

-- Bars of one symbol, with the empty buckets of p_starts/p_ends filled with the previous close
-- (open = high = low = close, volume 0, filled = true); buckets before the first known price are
-- left out.
CREATE OR REPLACE FUNCTION lakets._candle_filled(p_symbol text, p_unit text, p_multiple integer, p_zone text,
                                                 p_starts timestamptz[], p_ends timestamptz[], p_watermark timestamptz)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean, filled boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_prev double precision;
    v_pending tstzmultirange;
    v_search record;
    v_hi timestamptz;
BEGIN
    IF coalesce(cardinality(p_starts), 0) = 0 THEN
        RETURN;
    END IF;
    -- The close before the first bucket: the newest bar before it (a bucket that only looked as if
    -- it held ticks is passed over, a bounded number of times).
    v_hi := p_starts[1];
    FOR i IN 1 .. 4 LOOP
        SELECT * INTO v_search FROM lakets._candle_search(p_symbol, p_unit, p_multiple, p_zone, false, NULL, v_hi, 1, i > 1);
        EXIT WHEN cardinality(v_search.starts) = 0;
        SELECT c.close INTO v_prev
          FROM lakets._candle_compose(p_symbol, v_search.starts,
                                      lakets._candle_ends(p_unit, p_multiple, p_zone, v_search.starts), p_watermark,
                                      lakets._candle_level(p_unit, p_multiple)) c;
        EXIT WHEN v_prev IS NOT NULL OR v_search.exhausted;
        v_hi := v_search.starts[1];
    END LOOP;
    -- An empty bucket is final once closed, unless something is pending in it (ticks deleted).
    SELECT coalesce(range_agg(tstzrange(date_bin(interval '1 minute', i.bucket, '2000-01-01 00:00:00+00'),
                                        i.bucket + CASE i.rollup WHEN 'ohlcv_1min' THEN interval '1 minute'
                                                                 WHEN 'ohlcv_1hour' THEN interval '1 hour' ELSE interval '1 day' END)), '{}')
      INTO v_pending
      FROM (SELECT DISTINCT l.rollup, l.bucket FROM lakets.rollup_invalidations l
             WHERE l.rollup IN ('ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day') AND l.key = p_symbol
               AND l.bucket >= date_bin(interval '1 day', p_starts[1], '2000-01-01 00:00:00+00')
               AND l.bucket < p_ends[cardinality(p_ends)]) i;
    RETURN QUERY
    WITH c AS (
        SELECT * FROM lakets._candle_compose(p_symbol, p_starts, p_ends, p_watermark, lakets._candle_level(p_unit, p_multiple))
    ), g AS (
        SELECT t.s, t.e, c.open, c.high, c.low, c.close, c.volume, c.tick_count, c.final,
               lakets.locf(c.close, v_prev) OVER (ORDER BY t.s) AS carried
          FROM unnest(p_starts, p_ends) t(s, e)
          LEFT JOIN c ON c.bucket = t.s
    )
    SELECT g.s, coalesce(g.open, g.carried), coalesce(g.high, g.carried), coalesce(g.low, g.carried),
           coalesce(g.close, g.carried), coalesce(g.volume, 0), coalesce(g.tick_count, 0),
           coalesce(g.final, coalesce(g.e <= p_watermark, false) AND NOT tstzrange(g.s, g.e) && v_pending),
           g.open IS NULL
      FROM g
     WHERE g.carried IS NOT NULL
     ORDER BY g.s;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- The reads

-- A page of bars for each symbol of p_symbols (the API's candles and candleSeries), p_limit bars
-- each at most, rows by symbol then ascending bucket:
--   * p_before: the newest bars whose bucket starts before it (page back: pass the first bar's
--     bucket); p_from: the oldest from it on (bucket starts >= p_from), before p_to when given;
--     p_to alone: the newest starting before it; none: the newest bars;
--   * without p_fill, empty buckets are skipped and the search reaches further back or forward:
--     p_limit counts bars, and fewer than p_limit bars means there are no more in that direction;
--   * with p_fill, p_limit consecutive buckets (ending with the open bar when neither p_from,
--     p_to nor p_before is given) with the empty ones filled, those before the first known price
--     left out.
-- No parallel workers: a page is small, and a read shares the server with many others.
CREATE OR REPLACE FUNCTION lakets.candle_page(p_symbols text[], p_unit text, p_multiple integer, p_zone text,
                                              p_from timestamptz, p_to timestamptz, p_before timestamptz,
                                              p_limit integer, p_fill boolean)
RETURNS TABLE (symbol text, bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean, filled boolean)
LANGUAGE plpgsql STABLE SET max_parallel_workers_per_gather = 0 AS $$
#variable_conflict use_column
DECLARE
    v_forward boolean := p_from IS NOT NULL;
    v_wm timestamptz;
    v_symbol text;
    v_need integer;
    v_got integer;
    v_lo timestamptz;
    v_hi timestamptz;
    v_search record;
    v_starts timestamptz[];
    v_ends timestamptz[];
    v_anchor timestamptz;
    v_level integer := lakets._candle_level(p_unit, p_multiple);
    v_width interval;
    v_rows integer;
    v_edge timestamptz;
    v_upper timestamptz;
    v_open_starts timestamptz[];
    v_open_bars integer;
    v_closed timestamptz[];
    v_fast boolean;
BEGIN
    PERFORM lakets.candle_check_size(p_unit, p_multiple, p_zone);
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'candles: limit must be positive' USING ERRCODE = '22023', DETAIL = 'argument: limit';
    END IF;
    IF p_before IS NOT NULL AND (p_from IS NOT NULL OR p_to IS NOT NULL) THEN
        RAISE EXCEPTION 'candles: before cannot be combined with from or to' USING ERRCODE = '22023', DETAIL = 'argument: before';
    END IF;
    IF p_from IS NOT NULL AND p_to IS NOT NULL AND p_from > p_to THEN
        RAISE EXCEPTION 'candles: from must not be after to' USING ERRCODE = '22023', DETAIL = 'argument: from';
    END IF;
    SELECT r.watermark INTO v_wm FROM lakets.rollups r WHERE r.name = 'ohlcv_1min';

    FOREACH v_symbol IN ARRAY coalesce(p_symbols, '{}') LOOP
        IF p_fill THEN
            IF v_forward THEN
                v_anchor := lakets.candle_bucket(p_unit, p_multiple, p_zone, p_from);
                IF v_anchor < p_from THEN
                    v_anchor := lakets.candle_bucket_next(p_unit, p_multiple, p_zone, v_anchor);
                END IF;
                v_starts := lakets._candle_run(p_unit, p_multiple, p_zone, true, v_anchor,
                                               coalesce(p_to, lakets.candle_bucket_next(p_unit, p_multiple, p_zone,
                                                                 lakets.candle_bucket(p_unit, p_multiple, p_zone, now()))),
                                               p_limit);
            ELSE
                v_anchor := lakets.candle_bucket(p_unit, p_multiple, p_zone,
                                                 coalesce(coalesce(p_before, p_to) - interval '1 microsecond', now()));
                v_starts := lakets._candle_run(p_unit, p_multiple, p_zone, false, v_anchor, NULL, p_limit);
            END IF;
            RETURN QUERY
            SELECT v_symbol, f.bucket, f.open, f.high, f.low, f.close, f.volume, f.tick_count, f.final, f.filled
              FROM lakets._candle_filled(v_symbol, p_unit, p_multiple, p_zone, v_starts,
                                         lakets._candle_ends(p_unit, p_multiple, p_zone, v_starts), v_wm) f;
            CONTINUE;
        END IF;

        v_need := p_limit;
        v_lo := p_from;
        v_hi := coalesce(p_before, p_to);
        v_open_starts := '{}';
        v_open_bars := 0;

        -- Paging back through bars of whole minute or hour rows (5 minutes, 4 hours): the bars
        -- before the open tail are stored rows unless something is pending there, so when nothing
        -- is, they are found and aggregated in two index range scans of the rollup instead of the
        -- general search and composition (which stay for the open tail, for pending buckets and
        -- for the rest). A bar's open and close are the first and last element of one array_agg
        -- ordered by bucket: the rows are sorted once by (bar, bucket) and both are read from it
        -- (min/max over an [epoch, value] array built per row were 14 % slower for 5-minute bars).
        IF NOT v_forward AND v_level IN (0, 1) THEN
            v_width := CASE p_unit WHEN 'minute' THEN make_interval(mins => p_multiple) ELSE make_interval(hours => p_multiple) END;
            v_rows := CASE WHEN v_level = 0 THEN p_multiple WHEN p_unit = 'hour' THEN p_multiple ELSE 1 END;
            v_edge := CASE v_level WHEN 0 THEN (lakets._candle_tails()).t_min ELSE (lakets._candle_tails()).t_hour END;
            IF v_edge > '-infinity' THEN
                v_edge := date_bin(v_width, v_edge, '2000-01-01 00:00:00+00');
                v_upper := CASE WHEN v_hi IS NULL THEN 'infinity' ELSE lakets.time_bucket_ceil(v_width, v_hi) END;
                -- The bars from the one holding the tail's start on: counted now, returned last.
                -- None when the symbol's newest tick (the last value cache, kept by the same
                -- transactions as the ticks) is older: a symbol not trading has no open tail, and
                -- the search's probes of the tick table (planned over every chunk) are skipped.
                IF v_upper > v_edge AND EXISTS (SELECT 1 FROM public._lvc_stock_ticks v
                                                 WHERE v.symbol = v_symbol AND v.time >= v_edge) THEN
                    SELECT * INTO v_search FROM lakets._candle_search(v_symbol, p_unit, p_multiple, p_zone, false, v_edge, v_hi, v_need, false);
                    v_open_starts := v_search.starts;
                    IF cardinality(v_open_starts) > 0 THEN
                        SELECT count(*)::integer INTO v_open_bars
                          FROM lakets._candle_compose(v_symbol, v_open_starts, lakets._candle_ends(p_unit, p_multiple, p_zone, v_open_starts), v_wm, v_level);
                        IF v_open_bars < v_need AND NOT v_search.exhausted THEN
                            -- More open bars than were looked at, some of them empty (deleted ticks):
                            -- the general path for the whole page.
                            v_open_starts := '{}';
                            v_open_bars := 0;
                            v_edge := '-infinity';
                        END IF;
                    END IF;
                END IF;
            END IF;
            IF v_edge > '-infinity' THEN
                v_upper := least(v_upper, v_edge);
                v_need := v_need - v_open_bars;
                v_fast := true;
                IF v_need > 0 THEN
                    -- The newest v_need bars that have stored rows before v_upper (v_need x v_rows
                    -- rows hold at least v_need bars; fewer rows: there are no more).
                    IF v_level = 0 THEN
                        v_closed := ARRAY(SELECT q.s FROM (SELECT DISTINCT date_bin(v_width, x.bucket, '2000-01-01 00:00:00+00') AS s
                                                             FROM (SELECT x.bucket FROM public.ohlcv_1min x WHERE x.symbol = v_symbol AND x.bucket < v_upper
                                                                    ORDER BY x.bucket DESC LIMIT v_need * v_rows) x
                                                            ORDER BY 1 DESC LIMIT v_need) q ORDER BY q.s);
                    ELSE
                        v_closed := ARRAY(SELECT q.s FROM (SELECT DISTINCT date_bin(v_width, x.bucket, '2000-01-01 00:00:00+00') AS s
                                                             FROM (SELECT x.bucket FROM public.ohlcv_1hour x WHERE x.symbol = v_symbol AND x.bucket < v_upper
                                                                    ORDER BY x.bucket DESC LIMIT v_need * v_rows) x
                                                            ORDER BY 1 DESC LIMIT v_need) q ORDER BY q.s);
                    END IF;
                    -- Anything pending there (late ticks, corrections, deleted ticks; below the page
                    -- too when the page is short: a pending bucket may be a bar without a stored row)
                    -- takes the general path.
                    v_fast := NOT EXISTS (
                        SELECT 1 FROM lakets.rollup_invalidations l
                         WHERE l.key = v_symbol AND l.bucket < v_upper
                           AND l.rollup = ANY (CASE WHEN v_level = 0 THEN ARRAY['ohlcv_1min'] ELSE ARRAY['ohlcv_1min', 'ohlcv_1hour'] END)
                           AND (cardinality(v_closed) < v_need OR l.bucket >= v_closed[1]));
                    IF v_fast AND cardinality(v_closed) > 0 THEN
                        IF v_level = 0 THEN
                            RETURN QUERY
                            SELECT v_symbol, date_bin(v_width, x.bucket, '2000-01-01 00:00:00+00'),
                                   (array_agg(x.open ORDER BY x.bucket))[1], max(x.high), min(x.low),
                                   (array_agg(x.close ORDER BY x.bucket))[count(*)], sum(x.volume), sum(x.tick_count)::bigint,
                                   coalesce(date_bin(v_width, x.bucket, '2000-01-01 00:00:00+00') + v_width <= v_wm, false), false
                              FROM public.ohlcv_1min x
                             WHERE x.symbol = v_symbol AND x.bucket >= v_closed[1] AND x.bucket < v_upper
                             GROUP BY 2 ORDER BY 2;
                        ELSE
                            RETURN QUERY
                            SELECT v_symbol, date_bin(v_width, x.bucket, '2000-01-01 00:00:00+00'),
                                   (array_agg(x.open ORDER BY x.bucket))[1], max(x.high), min(x.low),
                                   (array_agg(x.close ORDER BY x.bucket))[count(*)], sum(x.volume), sum(x.tick_count)::bigint,
                                   coalesce(date_bin(v_width, x.bucket, '2000-01-01 00:00:00+00') + v_width <= v_wm, false), false
                              FROM public.ohlcv_1hour x
                             WHERE x.symbol = v_symbol AND x.bucket >= v_closed[1] AND x.bucket < v_upper
                             GROUP BY 2 ORDER BY 2;
                        END IF;
                    END IF;
                END IF;
                IF v_fast THEN
                    IF cardinality(v_open_starts) > 0 THEN
                        RETURN QUERY
                        SELECT v_symbol, c.bucket, c.open, c.high, c.low, c.close, c.volume, c.tick_count, c.final, false
                          FROM lakets._candle_compose(v_symbol, v_open_starts, lakets._candle_ends(p_unit, p_multiple, p_zone, v_open_starts),
                                                      v_wm, v_level) c;
                    END IF;
                    CONTINUE;
                END IF;
                -- Pending buckets below the open tail: the general search for the rest, then the open bars.
                v_hi := v_upper;
            END IF;
        END IF;
        -- A bucket that only looked as if it held ticks (its ticks deleted, not yet refreshed) gives
        -- no bar: the search goes on past it, checking every pending bucket from then on.
        FOR round IN 1 .. 4 LOOP
            SELECT * INTO v_search FROM lakets._candle_search(v_symbol, p_unit, p_multiple, p_zone, v_forward, v_lo, v_hi, v_need,
                                                              round > 1);
            EXIT WHEN cardinality(v_search.starts) = 0;
            v_ends := lakets._candle_ends(p_unit, p_multiple, p_zone, v_search.starts);
            RETURN QUERY
            SELECT v_symbol, c.bucket, c.open, c.high, c.low, c.close, c.volume, c.tick_count, c.final, false
              FROM lakets._candle_compose(v_symbol, v_search.starts, v_ends, v_wm, v_level) c;
            GET DIAGNOSTICS v_got = ROW_COUNT;
            v_need := v_need - v_got;
            EXIT WHEN v_need <= 0 OR v_search.exhausted;
            IF v_forward THEN
                v_lo := v_ends[cardinality(v_ends)];
            ELSE
                v_hi := v_search.starts[1];
            END IF;
        END LOOP;
        IF cardinality(v_open_starts) > 0 THEN
            RETURN QUERY
            SELECT v_symbol, c.bucket, c.open, c.high, c.low, c.close, c.volume, c.tick_count, c.final, false
              FROM lakets._candle_compose(v_symbol, v_open_starts, lakets._candle_ends(p_unit, p_multiple, p_zone, v_open_starts),
                                          v_wm, v_level) c;
        END IF;
    END LOOP;
END;
$$;

-- The bars of this size containing the given instants, per symbol (p_symbols[i] with
-- p_instants[i]): what the live feed reads back when ticks of those minutes changed. Empty bars
-- are left out.
CREATE OR REPLACE FUNCTION lakets.candle_bars_at(p_symbols text[], p_instants timestamptz[], p_unit text,
                                                 p_multiple integer, p_zone text)
RETURNS TABLE (symbol text, bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean)
LANGUAGE plpgsql STABLE SET max_parallel_workers_per_gather = 0 AS $$
#variable_conflict use_column
DECLARE
    v_wm timestamptz;
    v_symbol text;
    v_starts timestamptz[];
BEGIN
    PERFORM lakets.candle_check_size(p_unit, p_multiple, p_zone);
    SELECT r.watermark INTO v_wm FROM lakets.rollups r WHERE r.name = 'ohlcv_1min';
    FOR v_symbol IN SELECT DISTINCT s FROM unnest(p_symbols) s WHERE s IS NOT NULL ORDER BY s LOOP
        v_starts := ARRAY(SELECT DISTINCT lakets.candle_bucket(p_unit, p_multiple, p_zone, u.t)
                            FROM unnest(p_symbols, p_instants) u(s, t)
                           WHERE u.s = v_symbol AND u.t IS NOT NULL
                           ORDER BY 1);
        RETURN QUERY
        SELECT v_symbol, c.bucket, c.open, c.high, c.low, c.close, c.volume, c.tick_count, c.final
          FROM lakets._candle_compose(v_symbol, v_starts, lakets._candle_ends(p_unit, p_multiple, p_zone, v_starts), v_wm,
                                      lakets._candle_level(p_unit, p_multiple)) c;
    END LOOP;
END;
$$;

-- Always-current candles of one rollup's width (minute, hour or UTC day), bucket starts in
-- [p_from, p_to) (inclusive from, exclusive to), ascending, empty buckets left out. Equal to
-- aggregating the raw ticks; final = the bucket is closed (at or before the minute rollup's
-- watermark) and nothing is pending for it. A settled range (nothing pending: a past day, a past
-- week, all of it closed) is read straight from the rollup's (symbol, bucket) index.
CREATE OR REPLACE FUNCTION lakets.candles(p_symbol text, p_granularity text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean)
LANGUAGE plpgsql STABLE SET max_parallel_workers_per_gather = 0 AS $$
#variable_conflict use_column
DECLARE
    v_rollup text := lakets.ohlcv_rollup(p_granularity);
    v_width interval;
    v_from timestamptz;
    v_to timestamptz;
    v_wm timestamptz;
    v_range tstzmultirange;
    v_tails record;
    v_tail timestamptz;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
        RAISE EXCEPTION 'candles: invalid range [%, %)', p_from, p_to USING ERRCODE = '22023';
    END IF;
    SELECT r.bucket_interval INTO v_width FROM lakets.rollups r WHERE r.name = v_rollup;
    SELECT r.watermark INTO v_wm FROM lakets.rollups r WHERE r.name = 'ohlcv_1min';
    v_from := lakets.time_bucket_ceil(v_width, p_from);
    v_to := lakets.time_bucket_ceil(v_width, p_to);
    IF v_from >= v_to THEN
        RETURN;
    END IF;
    v_tails := lakets._candle_tails();
    v_tail := CASE v_rollup WHEN 'ohlcv_1min' THEN v_tails.t_min WHEN 'ohlcv_1hour' THEN v_tails.t_hour ELSE v_tails.t_day END;
    IF v_to <= v_tail
       AND NOT EXISTS (SELECT 1 FROM lakets.rollup_invalidations i
                        WHERE i.rollup IN ('ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day') AND i.key = p_symbol
                          AND i.bucket >= v_from AND i.bucket < v_to) THEN
        -- Settled: the stored rows are the bars.
        IF v_rollup = 'ohlcv_1min' THEN
            RETURN QUERY SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count,
                                coalesce(x.bucket + v_width <= v_wm, false)
                           FROM public.ohlcv_1min x
                          WHERE x.symbol = p_symbol AND x.bucket >= v_from AND x.bucket < v_to ORDER BY x.bucket;
        ELSIF v_rollup = 'ohlcv_1hour' THEN
            RETURN QUERY SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count,
                                coalesce(x.bucket + v_width <= v_wm, false)
                           FROM public.ohlcv_1hour x
                          WHERE x.symbol = p_symbol AND x.bucket >= v_from AND x.bucket < v_to ORDER BY x.bucket;
        ELSE
            RETURN QUERY SELECT x.bucket, x.open, x.high, x.low, x.close, x.volume, x.tick_count,
                                coalesce(x.bucket + v_width <= v_wm, false)
                           FROM public.ohlcv_1day x
                          WHERE x.symbol = p_symbol AND x.bucket >= v_from AND x.bucket < v_to ORDER BY x.bucket;
        END IF;
        RETURN;
    END IF;
    v_range := tstzmultirange(tstzrange(v_from, v_to));
    RETURN QUERY
    SELECT date_bin(v_width, c.bucket, '2000-01-01 00:00:00+00') AS b,
           (min(ARRAY[date_part('epoch', c.bucket), c.open]))[2], max(c.high), min(c.low),
           (max(ARRAY[date_part('epoch', c.bucket), c.close]))[2], sum(c.volume), sum(c.tick_count)::bigint,
           coalesce(date_bin(v_width, c.bucket, '2000-01-01 00:00:00+00') + v_width <= v_wm, false) AND NOT bool_or(c.live)
      FROM lakets._candle_components(p_symbol,
                                     CASE WHEN v_rollup = 'ohlcv_1day' THEN v_range ELSE '{}' END,
                                     CASE WHEN v_rollup = 'ohlcv_1hour' THEN v_range ELSE '{}' END,
                                     CASE WHEN v_rollup = 'ohlcv_1min' THEN v_range ELSE '{}' END) c
     GROUP BY 1
     ORDER BY 1;
END;
$$;

-- Candles with gaps filled (fill: PREVIOUS) of one rollup's width: one row per bucket start in
-- [p_from, p_to); an empty bucket repeats the previous close as open = high = low = close with
-- volume 0 and tick_count 0 (filled = true). Buckets before the first known price are left out.
CREATE OR REPLACE FUNCTION lakets.candles_filled(p_symbol text, p_granularity text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (bucket timestamptz, open double precision, high double precision, low double precision,
               close double precision, volume double precision, tick_count bigint, final boolean, filled boolean)
LANGUAGE plpgsql STABLE SET max_parallel_workers_per_gather = 0 AS $$
#variable_conflict use_column
DECLARE
    v_rollup text := lakets.ohlcv_rollup(p_granularity);
    v_unit text := CASE v_rollup WHEN 'ohlcv_1min' THEN 'minute' WHEN 'ohlcv_1hour' THEN 'hour' ELSE 'day' END;
    v_width interval;
    v_starts timestamptz[];
    v_wm timestamptz;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
        RAISE EXCEPTION 'candles_filled: invalid range [%, %)', p_from, p_to USING ERRCODE = '22023';
    END IF;
    SELECT r.bucket_interval INTO v_width FROM lakets.rollups r WHERE r.name = v_rollup;
    SELECT r.watermark INTO v_wm FROM lakets.rollups r WHERE r.name = 'ohlcv_1min';
    IF (extract(epoch FROM p_to) - extract(epoch FROM p_from)) / extract(epoch FROM v_width) > 10000000 THEN
        RAISE EXCEPTION 'candles_filled: more than 10,000,000 buckets requested' USING ERRCODE = '54000';
    END IF;
    v_starts := ARRAY(SELECT g FROM lakets.time_bucket_gapfill(v_width, p_from, p_to) g);
    RETURN QUERY
    SELECT f.bucket, f.open, f.high, f.low, f.close, f.volume, f.tick_count, f.final, f.filled
      FROM lakets._candle_filled(p_symbol, v_unit, 1, 'UTC', v_starts,
                                 ARRAY(SELECT s + v_width FROM unnest(v_starts) WITH ORDINALITY u(s, o) ORDER BY o), v_wm) f;
END;
$$;
