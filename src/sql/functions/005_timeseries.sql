-- Time-series functions (docs/ARCHITECTURE.md §5): first/last aggregates, gap-filling and
-- carry-forward. time_bucket itself is with the catalogue (001_catalog.sql). Needs nothing but the
-- lakets schema; every statement can run again.

-- first(value, ts) / last(value, ts): the value at the smallest / largest ts. They are
-- deterministic whatever the input order:
--   * first(value, ts, tiebreak) / last(value, ts, tiebreak) order by (ts, tiebreak): the
--     candles pass tick_id, so open/close ties break on (time, tick_id) as everywhere else;
--   * with equal keys (or the two-argument form on equal ts) first keeps the smallest value and
--     last the largest.
-- Rows whose ts is NULL are ignored; a NULL value is a value like any other. The aggregates have
-- combine functions, so Postgres may run them in parallel plans. One overload per value type
-- (polymorphic state types cannot hold the ts in plain SQL).
DO $gen$
DECLARE
    v_type text;
    v_suffix text;
    v_kind text;
    v_cmp text;       -- '<' for first, '>' for last
    v_state text;
BEGIN
    FOR v_type, v_suffix IN VALUES ('double precision', 'f8'), ('numeric', 'num'), ('bigint', 'i8'),
                                   ('integer', 'i4'), ('real', 'f4'), ('text', 'text'),
                                   ('timestamptz', 'tstz') LOOP
        v_state := 'lakets._fl_' || v_suffix;
        IF to_regtype(v_state) IS NULL THEN
            EXECUTE format('CREATE TYPE %s AS (ts timestamptz, tb bigint, v %s)', v_state, v_type);
        END IF;
        FOREACH v_kind IN ARRAY ARRAY['first', 'last'] LOOP
            v_cmp := CASE v_kind WHEN 'first' THEN '<' ELSE '>' END;
            -- Does candidate (ts, tb, v) beat state s?
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION lakets.%1$I(s %2$s, c %2$s) RETURNS %2$s
                LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $b$
                BEGIN
                    IF c IS NULL OR c.ts IS NULL THEN RETURN s; END IF;
                    IF s IS NULL OR s.ts IS NULL THEN RETURN c; END IF;
                    IF c.ts %3$s s.ts THEN RETURN c; END IF;
                    IF c.ts = s.ts THEN
                        IF c.tb IS DISTINCT FROM s.tb THEN
                            IF s.tb IS NULL OR (c.tb IS NOT NULL AND c.tb %3$s s.tb) THEN RETURN c; END IF;
                            RETURN s;
                        END IF;
                        IF c.v IS NOT NULL AND (s.v IS NULL OR c.v %3$s s.v) THEN RETURN c; END IF;
                    END IF;
                    RETURN s;
                END;
                $b$
            $f$, '_' || v_kind || '_combine_' || v_suffix, v_state, v_cmp);
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION lakets.%1$I(s %2$s, v %3$s, ts timestamptz, tb bigint) RETURNS %2$s
                LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $b$
                BEGIN
                    IF ts IS NULL THEN RETURN s; END IF;
                    IF s IS NULL OR ts %4$s s.ts THEN RETURN ROW(ts, tb, v)::%2$s; END IF;
                    IF ts = s.ts THEN
                        IF tb IS DISTINCT FROM s.tb THEN
                            IF s.tb IS NULL OR (tb IS NOT NULL AND tb %4$s s.tb) THEN RETURN ROW(ts, tb, v)::%2$s; END IF;
                            RETURN s;
                        END IF;
                        IF v IS NOT NULL AND (s.v IS NULL OR v %4$s s.v) THEN RETURN ROW(ts, tb, v)::%2$s; END IF;
                    END IF;
                    RETURN s;
                END;
                $b$
            $f$, '_' || v_kind || '_step3_' || v_suffix, v_state, v_type, v_cmp);
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION lakets.%1$I(s %2$s, v %3$s, ts timestamptz) RETURNS %2$s
                LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $b$
                BEGIN
                    IF ts IS NULL THEN RETURN s; END IF;
                    IF s IS NULL OR ts %4$s s.ts OR (ts = s.ts AND v IS NOT NULL AND (s.v IS NULL OR v %4$s s.v)) THEN
                        RETURN ROW(ts, NULL, v)::%2$s;
                    END IF;
                    RETURN s;
                END;
                $b$
            $f$, '_' || v_kind || '_step2_' || v_suffix, v_state, v_type, v_cmp);
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION lakets.%1$I(s %2$s) RETURNS %3$s
                LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $b$ SELECT s.v $b$
            $f$, '_fl_final_' || v_suffix, v_state, v_type);

            EXECUTE format('DROP AGGREGATE IF EXISTS lakets.%I(%s, timestamptz, bigint)', v_kind, v_type);
            EXECUTE format('CREATE AGGREGATE lakets.%I(%s, timestamptz, bigint) (
                                sfunc = lakets.%I, stype = %s, finalfunc = lakets.%I,
                                combinefunc = lakets.%I, parallel = safe)',
                           v_kind, v_type, '_' || v_kind || '_step3_' || v_suffix, v_state,
                           '_fl_final_' || v_suffix, '_' || v_kind || '_combine_' || v_suffix);
            EXECUTE format('DROP AGGREGATE IF EXISTS lakets.%I(%s, timestamptz)', v_kind, v_type);
            EXECUTE format('CREATE AGGREGATE lakets.%I(%s, timestamptz) (
                                sfunc = lakets.%I, stype = %s, finalfunc = lakets.%I,
                                combinefunc = lakets.%I, parallel = safe)',
                           v_kind, v_type, '_' || v_kind || '_step2_' || v_suffix, v_state,
                           '_fl_final_' || v_suffix, '_' || v_kind || '_combine_' || v_suffix);
        END LOOP;
    END LOOP;
END;
$gen$;

-- Ceiling of time_bucket: the first bucket start at or after p_ts.
CREATE OR REPLACE FUNCTION lakets.time_bucket_ceil(p_width interval, p_ts timestamptz,
                                                   p_origin timestamptz DEFAULT '2000-01-01 00:00:00+00')
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN date_bin(p_width, p_ts, p_origin) = p_ts THEN p_ts
                ELSE date_bin(p_width, p_ts, p_origin) + p_width END
$$;

-- Gap-filling: every bucket start in [p_start, p_finish), UTC-aligned like time_bucket. Join
-- the aggregated rows to it (LEFT JOIN) so that empty buckets appear, then carry values forward
-- with locf. (TimescaleDB's time_bucket_gapfill rewrites the GROUP BY; ours is an explicit
-- series, which plain Postgres can plan.)
CREATE OR REPLACE FUNCTION lakets.time_bucket_gapfill(p_width interval, p_start timestamptz, p_finish timestamptz,
                                                      p_origin timestamptz DEFAULT '2000-01-01 00:00:00+00')
RETURNS SETOF timestamptz LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE ROWS 100 AS $$
BEGIN
    IF p_width IS NULL OR p_width <= interval '0' THEN
        RAISE EXCEPTION 'time_bucket_gapfill: bucket width must be positive' USING ERRCODE = '22023';
    END IF;
    IF p_start IS NULL OR p_finish IS NULL OR p_start >= p_finish THEN
        RETURN;
    END IF;
    IF (extract(epoch FROM p_finish) - extract(epoch FROM p_start)) / extract(epoch FROM p_width) > 10000000 THEN
        RAISE EXCEPTION 'time_bucket_gapfill: more than 10,000,000 buckets requested' USING ERRCODE = '54000';
    END IF;
    RETURN QUERY SELECT g FROM generate_series(lakets.time_bucket_ceil(p_width, p_start, p_origin),
                                               p_finish - interval '1 microsecond', p_width) g;
END;
$$;

-- locf (last observation carried forward) as a window aggregate:
--   lakets.locf(x) OVER (ORDER BY bucket)  = the last non-NULL x at or before the current row.
-- An optional seed value stands in before the first observation (e.g. the close before the window).
CREATE OR REPLACE FUNCTION lakets._locf_step(s anycompatible, v anycompatible) RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(v, s) $$;

CREATE OR REPLACE FUNCTION lakets._locf_step_seeded(s anycompatible, v anycompatible, seed anycompatible) RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(v, s, seed) $$;

DROP AGGREGATE IF EXISTS lakets.locf(anycompatible);

CREATE AGGREGATE lakets.locf(anycompatible) (sfunc = lakets._locf_step, stype = anycompatible);

DROP AGGREGATE IF EXISTS lakets.locf(anycompatible, anycompatible);

CREATE AGGREGATE lakets.locf(anycompatible, anycompatible) (sfunc = lakets._locf_step_seeded, stype = anycompatible);

-- The first instant of the local date p_date in the time zone p_zone (an IANA name), rounded up to
-- a whole minute. Usually local midnight; but
--   * where midnight does not exist (a daylight-saving jump at 00:00), the day starts at the jump,
--     which is what Postgres makes of the missing local time;
--   * where midnight happens twice (a fall-back to 00:00), Postgres takes the later of the two
--     instants, while the day began at the earlier one: the local offset in force just before
--     gives it;
--   * in the years a zone kept local mean time (offsets with seconds), the start is rounded up to
--     the minute, so that every day is a whole number of minutes and composes from minute rollups.
-- Every instant whose local date is p_date lies at or after it (to the minute); PL/pgSQL so that
-- its expressions are compiled once per session.
CREATE OR REPLACE FUNCTION lakets.zone_day_start(p_date date, p_zone text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_local timestamp := p_date::timestamp;
    v_start timestamptz := v_local AT TIME ZONE p_zone;
    v_before timestamptz := v_start - interval '1 minute';
    v_earlier timestamptz := (v_local AT TIME ZONE 'UTC') - ((v_before AT TIME ZONE p_zone) - (v_before AT TIME ZONE 'UTC'));
BEGIN
    IF v_earlier < v_start AND (v_earlier AT TIME ZONE p_zone) = v_local THEN
        v_start := v_earlier;
    END IF;
    RETURN lakets.time_bucket_ceil(interval '1 minute', v_start);
END;
$$;
