-- One bad bucket never stops the refresh of the others.
--
-- Before: refresh_rollup recomputed every claimed bucket in one statement and the cascade ran every
-- rollup in one transaction, so a single bucket whose recomputation raised (a float8 overflow, a
-- constraint added to a rollup table after the fact, a broken trigger) rolled back the whole
-- cascade on every run: no watermark advanced and the invalidation log only grew.
--
-- Now, per rollup:
--   * the claim is unchanged (DELETE … RETURNING in one statement; recomputation in later ones);
--   * the claimed buckets are recomputed together in a subtransaction (the usual, fast case);
--   * if that raises, the set is bisected: halves that succeed are kept, halves that fail are split
--     again, down to the single buckets that fail. A failing bucket's invalidation is appended to
--     the log again (the log stays append-only and the bucket stays pending, so candles() keeps
--     computing it live, exactly), and it is recorded in lakets.rollup_failed_buckets with the
--     error. Its dependants are not invalidated until it succeeds;
--   * buckets that failed before are retried alone on every refresh (oldest attempt first, a bounded
--     number per refresh), so they never hold back the fresh ones; a success clears the record;
--   * the number of recomputation attempts per refresh is bounded; what the budget does not reach
--     goes back to the log untouched and is taken up by the next refresh;
-- and the cascade refreshes each rollup in its own subtransaction, so an error outside the buckets
-- (which leaves that rollup's claimed invalidations in the log) does not stop the other rollups.

CREATE TABLE IF NOT EXISTS lakets.rollup_failed_buckets (
    rollup           text        NOT NULL REFERENCES lakets.rollups (name) ON DELETE CASCADE,
    key              text        NOT NULL,
    bucket           timestamptz NOT NULL,
    error            text        NOT NULL,
    sqlstate         text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_failed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (rollup, key, bucket)
);

-- The derived table standing for {source} in a recomputation of the claimed buckets whose ordinal
-- is in [$1, $2]: the plain ones, or those whose source range was dropped (p_dropped).
CREATE OR REPLACE FUNCTION lakets._rollup_claim_source(r lakets.rollups, p_dropped boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_keytype text;
    v_source regclass;
BEGIN
    v_source := CASE r.source_kind
        WHEN 'rollup' THEN format('public.%I', r.source)::regclass
        ELSE (SELECT format('%I.%I', c.table_schema, c.table_name)::regclass FROM lakets.chronotables c WHERE c.table_name = r.source)
    END;
    IF r.key_column IS NOT NULL THEN
        SELECT format_type(a.atttypid, a.atttypmod) INTO v_keytype FROM pg_attribute a
         WHERE a.attrelid = v_source AND a.attname = r.key_column AND NOT a.attisdropped;
    END IF;
    -- The equality on the bucket lets large claims hash-join; the range lets small claims use
    -- the source's (key, time) index.
    RETURN format($f$(SELECT _lk_s.* FROM pg_temp._lakets_refresh_claim _lk_c JOIN %s _lk_s ON %s date_bin(%L::interval, _lk_s.%I, '2000-01-01 00:00:00+00') = _lk_c.b AND _lk_s.%I >= _lk_c.b AND _lk_s.%I < _lk_c.e WHERE _lk_c.ord BETWEEN $1 AND $2 AND _lk_c.dropped_chunk IS %s NULL)$f$,
                  v_source,
                  CASE WHEN r.key_column IS NULL THEN ''
                       ELSE format('_lk_s.%I = _lk_c.k::%s AND', r.key_column, v_keytype) END,
                  r.bucket_interval, r.source_time_column, r.source_time_column, r.source_time_column,
                  CASE WHEN p_dropped THEN 'NOT' ELSE '' END);
END;
$$;

-- Recomputes the claimed buckets with ordinals in [p_lo, p_hi] (pg_temp._lakets_refresh_claim):
-- seal the base of buckets whose source range was dropped, delete the stored rows, insert them
-- again from the source (or merged from the base), and invalidate the dependants' covering buckets.
-- Returns the rows written. Raises whatever the recomputation raises: the caller runs it in a
-- subtransaction.
CREATE OR REPLACE FUNCTION lakets._rollup_recompute(r lakets.rollups, p_lo integer, p_hi integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_keytype text;
    v_keycmp text;
    v_base text;
    v_has_dropped boolean;
    v_written bigint;
    v_merged bigint;
    d record;
BEGIN
    SELECT format_type(a.atttypid, a.atttypmod) INTO v_keytype FROM pg_attribute a
     WHERE a.attrelid = format('public.%I', r.name)::regclass AND a.attname = r.key_column;
    v_keycmp := CASE WHEN r.key_column IS NULL THEN 'true'
                     ELSE format('x.%I = c.k::%s', r.key_column, v_keytype) END;
    SELECT EXISTS (SELECT 1 FROM pg_temp._lakets_refresh_claim c
                    WHERE c.ord BETWEEN p_lo AND p_hi AND c.dropped_chunk IS NOT NULL)
      INTO v_has_dropped;

    IF v_has_dropped THEN
        IF r.merge_query IS NULL THEN
            RAISE EXCEPTION 'rollup %: bucket(s) lost source rows to retention and the rollup has no merge query', r.name
                USING ERRCODE = '55000';
        END IF;
        v_base := format('lakets.%I', '_rollup_base_' || r.name);
        -- Seal the base: the row as it stands, the first time a drop is seen for the bucket (or a
        -- later generation of the range was dropped since). An absent row seals as NULL.
        EXECUTE format($q$
            DELETE FROM %1$s bs USING pg_temp._lakets_refresh_claim c
             WHERE c.ord BETWEEN $1 AND $2 AND c.dropped_chunk IS NOT NULL AND bs.key = c.k AND bs.bucket = c.b
               AND bs.sealed_chunk_id < c.dropped_chunk$q$, v_base) USING p_lo, p_hi;
        EXECUTE format($q$
            INSERT INTO %1$s (key, bucket, sealed_chunk_id, base)
            SELECT c.k, c.b, c.dropped_chunk, (SELECT x FROM public.%2$I x WHERE %3$s AND x.bucket = c.b)
              FROM pg_temp._lakets_refresh_claim c
             WHERE c.ord BETWEEN $1 AND $2 AND c.dropped_chunk IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM %1$s bs WHERE bs.key = c.k AND bs.bucket = c.b)$q$,
            v_base, r.name, v_keycmp) USING p_lo, p_hi;
    END IF;

    EXECUTE format('DELETE FROM public.%I x USING pg_temp._lakets_refresh_claim c WHERE c.ord BETWEEN $1 AND $2 AND %s AND x.bucket = c.b',
                   r.name, v_keycmp) USING p_lo, p_hi;
    EXECUTE format('INSERT INTO public.%I SELECT * FROM (%s) q', r.name,
                   replace(r.query, '{source}', lakets._rollup_claim_source(r, false))) USING p_lo, p_hi;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_has_dropped THEN
        EXECUTE format($q$
            INSERT INTO public.%1$I SELECT * FROM (%2$s) m$q$,
            r.name,
            replace(r.merge_query, '{rows}', format($r$(
                SELECT (bs.base).* FROM %1$s bs JOIN pg_temp._lakets_refresh_claim c
                    ON c.ord BETWEEN $1 AND $2 AND c.dropped_chunk IS NOT NULL AND bs.key = c.k AND bs.bucket = c.b
                 WHERE (bs.base).bucket IS NOT NULL
                UNION ALL
                SELECT * FROM (%2$s) q)$r$,
                v_base, replace(r.query, '{source}', lakets._rollup_claim_source(r, true))))) USING p_lo, p_hi;
        GET DIAGNOSTICS v_merged = ROW_COUNT;
        v_written := v_written + v_merged;
    END IF;

    -- Dependants re-read these buckets: invalidate their covering buckets (append-only).
    FOR d IN SELECT x.name, x.bucket_interval FROM lakets.rollups x WHERE r.name = ANY (x.depends_on) ORDER BY x.name LOOP
        INSERT INTO lakets.rollup_invalidations (rollup, key, bucket)
        SELECT DISTINCT d.name, c.k, date_bin(d.bucket_interval, c.b, '2000-01-01 00:00:00+00')
          FROM pg_temp._lakets_refresh_claim c
         WHERE c.ord BETWEEN p_lo AND p_hi;
    END LOOP;
    RETURN v_written;
END;
$$;

-- The claimed buckets with ordinals in [p_lo, p_hi] go back to the log, to be refreshed later.
CREATE OR REPLACE FUNCTION lakets._rollup_relog(p_name text, p_lo integer, p_hi integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- plpgsql, not sql: the temp table exists only in the refreshing session.
    INSERT INTO lakets.rollup_invalidations (rollup, key, bucket)
    SELECT p_name, c.k, c.b FROM pg_temp._lakets_refresh_claim c WHERE c.ord BETWEEN p_lo AND p_hi ORDER BY c.ord;
END;
$$;

-- A bucket whose recomputation raised: recorded with its error and put back in the log.
CREATE OR REPLACE FUNCTION lakets._rollup_bucket_failed(p_name text, p_ord integer, p_error text, p_sqlstate text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lakets.rollup_failed_buckets AS f (rollup, key, bucket, error, sqlstate)
    SELECT p_name, c.k, c.b, p_error, p_sqlstate FROM pg_temp._lakets_refresh_claim c WHERE c.ord = p_ord
    ON CONFLICT (rollup, key, bucket) DO UPDATE
       SET error = excluded.error, sqlstate = excluded.sqlstate,
           attempts = f.attempts + 1, last_failed_at = clock_timestamp();
    PERFORM lakets._rollup_relog(p_name, p_ord, p_ord);
END;
$$;

-- Recomputes exactly the buckets invalidated for one rollup:
--   1. serialise with the other refreshes of this rollup (transaction advisory lock; ingest
--      never takes it, so it is never blocked);
--   2. claim the log rows with DELETE … RETURNING and deduplicate them into a temp table, fresh
--      buckets first (by key, bucket), then those that failed before (oldest attempt first);
--   3. in later statements (fresh snapshots): recompute the fresh buckets together, bisecting on
--      error to isolate the failing ones; retry the known failing ones alone; a failing bucket goes
--      back to the log and to lakets.rollup_failed_buckets;
--   4. advance the watermark to the start of the current bucket (= end of the last closed one),
--      never beyond the watermark of what it reads, and record the refresh. A failing bucket does
--      not hold the watermark back: it stays pending, and pending buckets are read live.
-- The result gains columns (failed_buckets, deferred_buckets, first_error): drop the old signature.
DROP FUNCTION IF EXISTS lakets.refresh_rollup(text);
CREATE FUNCTION lakets.refresh_rollup(p_name text,
    OUT rollup text, OUT log_rows bigint, OUT buckets bigint, OUT rows_written bigint,
    OUT merged_buckets bigint, OUT watermark timestamptz, OUT duration_ms double precision,
    OUT failed_buckets bigint, OUT deferred_buckets bigint, OUT first_error text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    -- At most this many recomputation attempts for the fresh buckets per refresh: isolating one
    -- failing bucket among n takes about 2 log2(n) of them (about 40 for a million buckets). Each
    -- attempt is a subtransaction; keeping their number near 64 (the subtransactions a backend
    -- tracks without overflowing) keeps a failing refresh from slowing other sessions' snapshots.
    c_attempts constant integer := 64;
    -- At most this many known failing buckets retried per refresh.
    c_retries constant integer := 16;
    r lakets.rollups;
    t0 timestamptz := clock_timestamp();
    v_fresh integer;
    v_total integer;
    v_attempts integer := 0;
    v_stack integer[] := '{}';   -- pairs lo, hi of ordinal ranges still to recompute
    v_lo integer;
    v_hi integer;
    v_mid integer;
    v_ord integer;
    v_err text;
    v_state text;
    v_wm timestamptz;
BEGIN
    SELECT * INTO r FROM lakets.rollups WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown rollup %', p_name USING ERRCODE = '42P01';
    END IF;
    rollup := p_name;
    merged_buckets := 0;
    rows_written := 0;
    failed_buckets := 0;
    deferred_buckets := 0;
    PERFORM pg_advisory_xact_lock(hashtext('lakets.refresh_rollup'), hashtext(p_name));
    -- Another refresh may have committed while we waited: read the registry row again.
    SELECT * INTO r FROM lakets.rollups WHERE name = p_name;

    IF to_regclass('pg_temp._lakets_refresh_claim') IS NULL THEN
        CREATE TEMP TABLE _lakets_refresh_claim (ord integer NOT NULL, k text NOT NULL, b timestamptz NOT NULL,
                                                 e timestamptz NOT NULL, dropped_chunk bigint,
                                                 known_bad boolean NOT NULL) ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE pg_temp._lakets_refresh_claim;

    -- Claim. Rows inserted by transactions that commit after this statement's snapshot are not
    -- seen, hence not deleted: they stay in the log for the next refresh.
    WITH claimed AS (
        DELETE FROM lakets.rollup_invalidations i WHERE i.rollup = p_name RETURNING i.key, i.bucket
    ), uniq AS (
        SELECT c.key, c.bucket FROM claimed c GROUP BY c.key, c.bucket
    ), ins AS (
        INSERT INTO pg_temp._lakets_refresh_claim (ord, k, b, e, known_bad)
        SELECT row_number() OVER (ORDER BY f.last_failed_at IS NOT NULL, f.last_failed_at, u.key, u.bucket),
               u.key, u.bucket, u.bucket + r.bucket_interval, f.rollup IS NOT NULL
          FROM uniq u
          LEFT JOIN lakets.rollup_failed_buckets f ON f.rollup = p_name AND f.key = u.key AND f.bucket = u.bucket
        RETURNING known_bad
    )
    SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM ins), (SELECT count(*) FROM ins WHERE NOT known_bad)
      INTO log_rows, v_total, v_fresh;
    buckets := v_total;

    IF v_total > 0 THEN
        ANALYZE pg_temp._lakets_refresh_claim;

        -- Buckets whose source range lost a chunk to retention.
        IF r.source_kind = 'chronotable' AND EXISTS (
               SELECT 1 FROM lakets.chunks ch WHERE ch.table_name = r.source AND ch.status = 'dropped') THEN
            UPDATE pg_temp._lakets_refresh_claim c
               SET dropped_chunk = (SELECT max(ch.id) FROM lakets.chunks ch
                                     WHERE ch.table_name = r.source AND ch.status = 'dropped'
                                       AND ch.range_start < c.e AND ch.range_end > c.b)
             WHERE EXISTS (SELECT 1 FROM lakets.chunks ch
                            WHERE ch.table_name = r.source AND ch.status = 'dropped'
                              AND ch.range_start < c.e AND ch.range_end > c.b);
            GET DIAGNOSTICS merged_buckets = ROW_COUNT;
        END IF;

        -- Fresh buckets: all at once; a failing range is split in two, lower half first.
        IF v_fresh > 0 THEN
            v_stack := ARRAY[1, v_fresh];
        END IF;
        WHILE cardinality(v_stack) > 0 LOOP
            v_lo := v_stack[cardinality(v_stack) - 1];
            v_hi := v_stack[cardinality(v_stack)];
            v_stack := v_stack[1:cardinality(v_stack) - 2];
            IF v_attempts >= c_attempts THEN
                PERFORM lakets._rollup_relog(p_name, v_lo, v_hi);
                deferred_buckets := deferred_buckets + (v_hi - v_lo + 1);
                CONTINUE;
            END IF;
            v_attempts := v_attempts + 1;
            BEGIN
                rows_written := rows_written + lakets._rollup_recompute(r, v_lo, v_hi);
            EXCEPTION WHEN others THEN
                GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
                IF v_lo = v_hi THEN
                    PERFORM lakets._rollup_bucket_failed(p_name, v_lo, v_err, v_state);
                    failed_buckets := failed_buckets + 1;
                    first_error := coalesce(first_error, v_err);
                ELSE
                    v_mid := (v_lo + v_hi) / 2;
                    v_stack := v_stack || ARRAY[v_mid + 1, v_hi, v_lo, v_mid];
                END IF;
            END;
        END LOOP;

        -- Buckets that failed before: alone, the longest waiting first.
        FOR v_ord IN v_fresh + 1 .. v_total LOOP
            IF v_ord > v_fresh + c_retries THEN
                PERFORM lakets._rollup_relog(p_name, v_ord, v_total);
                deferred_buckets := deferred_buckets + (v_total - v_ord + 1);
                EXIT;
            END IF;
            BEGIN
                rows_written := rows_written + lakets._rollup_recompute(r, v_ord, v_ord);
                DELETE FROM lakets.rollup_failed_buckets f USING pg_temp._lakets_refresh_claim c
                 WHERE c.ord = v_ord AND f.rollup = p_name AND f.key = c.k AND f.bucket = c.b;
            EXCEPTION WHEN others THEN
                GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
                PERFORM lakets._rollup_bucket_failed(p_name, v_ord, v_err, v_state);
                failed_buckets := failed_buckets + 1;
                first_error := coalesce(first_error, v_err);
            END;
        END LOOP;
    END IF;

    -- Watermark: the start of the bucket still open now, capped by what the rollup reads.
    v_wm := date_bin(r.bucket_interval, now(), '2000-01-01 00:00:00+00');
    IF r.depends_on <> '{}' THEN
        IF EXISTS (SELECT 1 FROM lakets.rollups x WHERE x.name = ANY (r.depends_on) AND x.watermark IS NULL) THEN
            v_wm := NULL;
        ELSE
            v_wm := least(v_wm, (SELECT date_bin(r.bucket_interval, min(x.watermark), '2000-01-01 00:00:00+00')
                                   FROM lakets.rollups x WHERE x.name = ANY (r.depends_on)));
        END IF;
    END IF;
    duration_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    UPDATE lakets.rollups x
       SET watermark = CASE WHEN x.watermark IS NULL OR v_wm > x.watermark THEN v_wm ELSE x.watermark END,
           last_refresh_at = clock_timestamp(),
           last_refresh_ms = duration_ms,
           last_refresh_buckets = buckets,
           refresh_count = x.refresh_count + 1
     WHERE x.name = p_name
    RETURNING x.watermark INTO watermark;
    TRUNCATE pg_temp._lakets_refresh_claim;
END;
$$;

-- Refreshes every rollup in topological order (minute → hour → day), so a rollup never reads
-- stale upstream buckets. One row of statistics per rollup. Each rollup is refreshed in its own
-- subtransaction: if its refresh raises outside the per-bucket isolation, its claim is rolled back
-- (the invalidations stay in the log), the row reports the error, and the next rollups still run.
DROP FUNCTION IF EXISTS lakets.refresh_rollup_cascade();
CREATE FUNCTION lakets.refresh_rollup_cascade()
RETURNS TABLE (rollup text, level integer, log_rows bigint, buckets bigint, rows_written bigint,
               merged_buckets bigint, watermark timestamptz, duration_ms double precision,
               failed_buckets bigint, deferred_buckets bigint, error text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v record;
    f record;
    t0 timestamptz;
BEGIN
    FOR v IN SELECT l.name, l.level FROM lakets._rollup_levels() l ORDER BY l.level, l.name LOOP
        t0 := clock_timestamp();
        BEGIN
            SELECT * INTO f FROM lakets.refresh_rollup(v.name);
            rollup := f.rollup; level := v.level; log_rows := f.log_rows; buckets := f.buckets;
            rows_written := f.rows_written; merged_buckets := f.merged_buckets; watermark := f.watermark;
            duration_ms := f.duration_ms; failed_buckets := f.failed_buckets;
            deferred_buckets := f.deferred_buckets; error := f.first_error;
        EXCEPTION WHEN others THEN
            rollup := v.name; level := v.level; log_rows := 0; buckets := 0; rows_written := 0;
            merged_buckets := 0; failed_buckets := 0; deferred_buckets := 0;
            GET STACKED DIAGNOSTICS error = MESSAGE_TEXT;
            SELECT x.watermark INTO watermark FROM lakets.rollups x WHERE x.name = v.name;
            duration_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
