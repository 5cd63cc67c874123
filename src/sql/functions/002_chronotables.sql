-- ChronoTables: chunk routing, write stamps, the partition manager and chunks made ahead of a bulk
-- load (docs/ARCHITECTURE.md §3, H2, H9). Needs the catalogue (001).

-- The chunk range that should hold p_ts: the interval-aligned bucket, clipped so that it never
-- overlaps a live chunk (the interval of a table may change while older chunks still exist).
CREATE OR REPLACE FUNCTION lakets._chunk_range_for(p_table text, p_ts timestamptz,
                                                   OUT range_start timestamptz, OUT range_end timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_variable
DECLARE
    v_interval interval;
BEGIN
    SELECT chunk_interval INTO STRICT v_interval FROM lakets.chronotables WHERE table_name = p_table;
    range_start := lakets.time_bucket(v_interval, p_ts);
    range_end := range_start + v_interval;
    SELECT greatest(range_start, max(c.range_end)) INTO range_start
      FROM lakets.chunks c
     WHERE c.table_name = p_table AND c.status <> 'dropped'
       AND c.range_end <= p_ts AND c.range_end > range_start;
    SELECT least(range_end, min(c.range_start)) INTO range_end
      FROM lakets.chunks c
     WHERE c.table_name = p_table AND c.status <> 'dropped'
       AND c.range_start > p_ts AND c.range_start < range_end;
END;
$$;

CREATE OR REPLACE FUNCTION lakets._chunk_name(p_table text, p_start timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_table || '_' || to_char(p_start AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS')
$$;

-- Stamp the chunks a statement wrote: last_write_lsn/at, an incremental row count, and a tiered
-- chunk written again goes back to active. Chunks are locked in id order so that concurrent
-- writers never deadlock on lakets.chunks.
CREATE OR REPLACE FUNCTION lakets._stamp_chunks(p_table text, p_bounds jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- p_bounds: [{"id": chunk id, "n": signed row delta}, ...]
    PERFORM 1 FROM lakets.chunks c
      WHERE c.id IN (SELECT (e->>'id')::bigint FROM jsonb_array_elements(p_bounds) e)
      ORDER BY c.id FOR UPDATE;
    UPDATE lakets.chunks c
       SET last_write_lsn = pg_current_wal_insert_lsn(),
           last_write_at  = clock_timestamp(),
           row_count      = greatest(0, c.row_count + d.n),
           status         = CASE WHEN c.status = 'tiered' THEN 'active' ELSE c.status END,
           tiered_at      = CASE WHEN c.status = 'tiered' THEN NULL ELSE c.tiered_at END
      FROM (SELECT (e->>'id')::bigint AS id, sum((e->>'n')::bigint) AS n
              FROM jsonb_array_elements(p_bounds) e GROUP BY 1) d
     WHERE c.id = d.id;
END;
$$;

-- Generates the per-table statement trigger functions. They are generated (not generic) so that
-- the time column is static SQL and every plan is cached: these run on every ingest statement.
CREATE OR REPLACE FUNCTION lakets._install_chronotable_triggers(p_table text) RETURNS void
LANGUAGE plpgsql AS $gen$
DECLARE
    t lakets.chronotables;
    v_bounds_sql text;
    v_counts_sql text;
    v_guard_sql text;
BEGIN
    SELECT * INTO STRICT t FROM lakets.chronotables WHERE table_name = p_table;

    -- Per statement: one pass over the transition table for its bounds and size.
    v_bounds_sql := format('SELECT min(%1$I) AS lo, max(%1$I) AS hi, count(*) AS n INTO b FROM %%s;', t.time_column);
    -- Then the row delta per chunk into %2$s: when one live chunk holds the whole [lo, hi] (a
    -- batch of the stream, a backfill batch inside one chunk) every row is in it, and the count of
    -- the bounds pass is the delta; otherwise a count per candidate chunk (usually two).
    v_counts_sql := format($q$
        %%2$s := NULL;
        SELECT jsonb_build_array(jsonb_build_object('id', c.id, 'n', %%1$s * b.n)) INTO %%2$s
          FROM lakets.chunks c
         WHERE c.table_name = %2$L AND c.status <> 'dropped' AND c.range_start <= b.lo AND c.range_end > b.hi;
        IF %%2$s IS NULL THEN
            SELECT coalesce(jsonb_agg(jsonb_build_object('id', x.id, 'n', %%1$s * x.n)), '[]'::jsonb) INTO %%2$s
              FROM (SELECT c.id, count(*) AS n
                      FROM lakets.chunks c
                      JOIN %%3$I r ON r.%1$I >= c.range_start AND r.%1$I < c.range_end
                     WHERE c.table_name = %2$L AND c.status <> 'dropped'
                       AND c.range_end > b.lo AND c.range_start <= b.hi
                     GROUP BY c.id) x;
        END IF;
    $q$, t.time_column, t.table_name);

    v_guard_sql := format($q$
        IF b.hi > statement_timestamp() + %1$L::interval THEN
            RAISE EXCEPTION 'tick time %% of %% is beyond now() + max_future_skew (%%)', b.hi, %2$L, %1$L::interval
                USING ERRCODE = '22008',
                      HINT = 'Far-future ticks are refused so they never reach the latest price; check the sender''s clock.';
        END IF;
    $q$, t.max_future_skew, t.table_name);

    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        DECLARE
            b record;
            v_delta jsonb;
        BEGIN
            %3$s
            IF b.lo IS NULL THEN RETURN NULL; END IF;
            %4$s
            %5$s
            IF v_delta <> '[]'::jsonb THEN PERFORM lakets._stamp_chunks(%2$L, v_delta); END IF;
            RETURN NULL;
        END;
        $body$
    $f$, '_ins_' || t.table_name, t.table_name, format(v_bounds_sql, 'new_rows'), v_guard_sql,
       format(v_counts_sql, '1', 'v_delta', 'new_rows'));

    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        DECLARE
            b record;
            v_delta jsonb;
            v_old jsonb;
        BEGIN
            %3$s
            IF b.lo IS NULL THEN RETURN NULL; END IF;
            %4$s
            %5$s
            %6$s
            %7$s
            v_delta := v_delta || v_old;
            IF v_delta <> '[]'::jsonb THEN PERFORM lakets._stamp_chunks(%2$L, v_delta); END IF;
            RETURN NULL;
        END;
        $body$
    $f$, '_upd_' || t.table_name, t.table_name, format(v_bounds_sql, 'old_rows'),
       format(v_counts_sql, '-1', 'v_old', 'old_rows'), format(v_bounds_sql, 'new_rows'), v_guard_sql,
       format(v_counts_sql, '1', 'v_delta', 'new_rows'));

    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        DECLARE
            b record;
            v_delta jsonb;
        BEGIN
            %3$s
            IF b.lo IS NULL THEN RETURN NULL; END IF;
            %4$s
            IF v_delta <> '[]'::jsonb THEN PERFORM lakets._stamp_chunks(%2$L, v_delta); END IF;
            RETURN NULL;
        END;
        $body$
    $f$, '_del_' || t.table_name, t.table_name, format(v_bounds_sql, 'old_rows'),
       format(v_counts_sql, '-1', 'v_delta', 'old_rows'));

    -- Trigger names start with "a_" so the guard (which can refuse the statement) runs before
    -- the other statement triggers of the table, which fire in name order.
    EXECUTE format('DROP TRIGGER IF EXISTS a_lakets_chunks_ins ON %I.%I', t.table_schema, t.table_name);
    EXECUTE format('CREATE TRIGGER a_lakets_chunks_ins AFTER INSERT ON %I.%I REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', t.table_schema, t.table_name, '_ins_' || t.table_name);
    EXECUTE format('DROP TRIGGER IF EXISTS a_lakets_chunks_upd ON %I.%I', t.table_schema, t.table_name);
    EXECUTE format('CREATE TRIGGER a_lakets_chunks_upd AFTER UPDATE ON %I.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', t.table_schema, t.table_name, '_upd_' || t.table_name);
    EXECUTE format('DROP TRIGGER IF EXISTS a_lakets_chunks_del ON %I.%I', t.table_schema, t.table_name);
    EXECUTE format('CREATE TRIGGER a_lakets_chunks_del AFTER DELETE ON %I.%I REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', t.table_schema, t.table_name, '_del_' || t.table_name);
END;
$gen$;

-- Registers a range-partitioned table as a ChronoTable: default partition, guards, write stamps,
-- and the first chunks.
CREATE OR REPLACE FUNCTION lakets.create_chronotable(p_table regclass, p_time_column text,
                                                     p_chunk_interval interval DEFAULT interval '1 day',
                                                     p_premake integer DEFAULT 3,
                                                     p_max_future_skew interval DEFAULT interval '5 minutes')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_schema text;
    v_name text;
    v_strategy "char";
    v_key text;
    v_nkeys integer;
BEGIN
    SELECT n.nspname, c.relname INTO v_schema, v_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table;
    SELECT pt.partstrat, a.attname, pt.partnatts INTO v_strategy, v_key, v_nkeys
      FROM pg_partitioned_table pt
      LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = p_table;
    IF v_strategy IS NULL OR v_strategy <> 'r' OR v_nkeys <> 1 OR v_key IS DISTINCT FROM p_time_column THEN
        RAISE EXCEPTION '% must be declared PARTITION BY RANGE (%)', p_table, p_time_column
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO lakets.chronotables (table_schema, table_name, time_column, chunk_interval, premake, max_future_skew)
    VALUES (v_schema, v_name, p_time_column, p_chunk_interval, p_premake, p_max_future_skew)
    ON CONFLICT (table_name) DO UPDATE
       SET chunk_interval = excluded.chunk_interval, premake = excluded.premake,
           max_future_skew = excluded.max_future_skew;

    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table pt WHERE pt.partrelid = p_table AND pt.partdefid <> 0) THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT', v_schema, v_name || '_default', v_schema, v_name);
    END IF;
    PERFORM lakets._install_partition_guard(v_schema, v_name || '_default');
    PERFORM lakets._install_chronotable_triggers(v_name);
END;
$$;

-- Changes the policy of a ChronoTable (profiles set the chunk interval at start-up). Existing
-- chunks keep their ranges; new ones are clipped so that ranges never overlap.
CREATE OR REPLACE FUNCTION lakets.set_chronotable_policy(p_table text, p_chunk_interval interval,
                                                         p_premake integer DEFAULT NULL,
                                                         p_max_future_skew interval DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_max_future_skew IS NOT NULL AND (p_max_future_skew < interval '0' OR p_max_future_skew > interval '1 day') THEN
        RAISE EXCEPTION 'max future skew % is out of bounds: it must be between 0 and 1 day', p_max_future_skew
            USING ERRCODE = '22023',
                  HINT = 'LAKETS_MAX_FUTURE_SKEW tolerates clock skew of senders; a skew of more than a day is a broken clock.';
    END IF;
    UPDATE lakets.chronotables
       SET chunk_interval = p_chunk_interval,
           premake = coalesce(p_premake, premake),
           max_future_skew = coalesce(p_max_future_skew, max_future_skew)
     WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown chronotable %', p_table USING ERRCODE = '42P01';
    END IF;
    PERFORM lakets._install_chronotable_triggers(p_table);
END;
$$;

-- Creates one chunk for [p_start, p_end) and attaches it. Rows of that range waiting in the
-- default partition are moved into it in the same transaction, so a concurrent reader sees each
-- row exactly once. Lifecycle DDL waits at most lock_timeout; the caller retries on its next run.
CREATE OR REPLACE FUNCTION lakets._create_chunk(p_table text, p_start timestamptz, p_end timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t lakets.chronotables;
    v_chunk text := lakets._chunk_name(p_table, p_start);
    v_default text := p_table || '_default';
    v_moved bigint := 0;
    v_generation integer;
    v_id bigint;
BEGIN
    SELECT * INTO STRICT t FROM lakets.chronotables WHERE table_name = p_table;
    PERFORM set_config('lakets.internal', 'on', true);

    -- Lock the default partition first (the parent is never waited on while holding a lock).
    EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', t.table_schema, v_default);

    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   t.table_schema, v_chunk, t.table_schema, t.table_name);
    -- A constraint matching the bound lets ATTACH skip scanning the new table.
    EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (%I >= %L AND %I < %L)',
                   t.table_schema, v_chunk, v_chunk || '_range', t.time_column, p_start, t.time_column, p_end);
    EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= %L AND %I < %L RETURNING *)
                    INSERT INTO %I.%I SELECT * FROM moved',
                   t.table_schema, v_default, t.time_column, p_start, t.time_column, p_end,
                   t.table_schema, v_chunk);
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   t.table_schema, t.table_name, t.table_schema, v_chunk, p_start, p_end);
    EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', t.table_schema, v_chunk, v_chunk || '_range');
    PERFORM lakets._install_partition_guard(t.table_schema, v_chunk);

    SELECT coalesce(max(generation), 0) + 1 INTO v_generation
      FROM lakets.chunks WHERE table_name = p_table AND range_start = p_start;
    INSERT INTO lakets.chunks (table_name, chunk_name, generation, range_start, range_end, row_count,
                               last_write_lsn, last_write_at)
    VALUES (p_table, v_chunk, v_generation, p_start, p_end, v_moved,
            -- Moved rows bypass the parent's statement triggers: stamp the chunk here (ARCHITECTURE.md H9).
            CASE WHEN v_moved > 0 THEN pg_current_wal_insert_lsn() END,
            CASE WHEN v_moved > 0 THEN clock_timestamp() END)
    RETURNING id INTO v_id;
    PERFORM set_config('lakets.internal', 'off', true);
    RETURN v_id;
END;
$$;

-- The partition manager: premake chunks ahead of now, move rows out of the default partition
-- into proper chunks, refresh sizes. Each chunk is its own subtransaction so a lock timeout
-- defers only that chunk to the next run.
CREATE OR REPLACE FUNCTION lakets.run_partition_manager(
    OUT chunks_created integer, OUT rows_moved bigint, OUT deferred integer)
LANGUAGE plpgsql AS $$
DECLARE
    t lakets.chronotables;
    r record;
    v_start timestamptz;
    v_end timestamptz;
    v_i integer;
    v_count bigint;
    v_has_rows boolean;
BEGIN
    chunks_created := 0; rows_moved := 0; deferred := 0;
    PERFORM set_config('lock_timeout', '200ms', true);
    FOR t IN SELECT * FROM lakets.chronotables ORDER BY table_name LOOP
        -- 1. Rows waiting in the default partition (late, or ahead of the premade chunks). Moving
        --    them takes the parent's ACCESS EXCLUSIVE lock first (waiting at most lock_timeout,
        --    and before any other lock): a reader that planned its scan before the new chunk was
        --    attached would otherwise miss the moved rows. Moves are rare (premade chunks catch
        --    current and recent ticks), so the brief ingest pause is the price of atomicity.
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', t.table_schema, t.table_name || '_default') INTO v_has_rows;
        IF v_has_rows THEN
            BEGIN
                EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', t.table_schema, t.table_name);
                FOR r IN EXECUTE format('SELECT DISTINCT lakets.time_bucket(%L, %I) AS b FROM %I.%I ORDER BY 1',
                                        t.chunk_interval, t.time_column, t.table_schema, t.table_name || '_default') LOOP
                    v_start := r.b;
                    WHILE v_start < r.b + t.chunk_interval LOOP
                        -- Part of the bucket may already be covered by a chunk of an earlier interval.
                        SELECT c.range_end INTO v_end FROM lakets.chunks c
                         WHERE c.table_name = t.table_name AND c.status <> 'dropped'
                           AND c.range_start <= v_start AND c.range_end > v_start;
                        IF FOUND THEN
                            v_start := v_end;
                            CONTINUE;
                        END IF;
                        SELECT cr.range_start, cr.range_end INTO v_start, v_end
                          FROM lakets._chunk_range_for(t.table_name, v_start) cr;
                        EXECUTE format('SELECT count(*) FROM %I.%I WHERE %I >= %L AND %I < %L',
                                       t.table_schema, t.table_name || '_default', t.time_column, v_start,
                                       t.time_column, v_end) INTO v_count;
                        IF v_count > 0 THEN
                            PERFORM lakets._create_chunk(t.table_name, v_start, v_end);
                            chunks_created := chunks_created + 1;
                            rows_moved := rows_moved + v_count;
                        END IF;
                        v_start := v_end;
                    END LOOP;
                END LOOP;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                deferred := deferred + 1;
            END;
        END IF;

        -- 2. Premake: the current chunk and `premake` more ahead of now.
        FOR v_i IN 0 .. t.premake LOOP
            v_start := lakets.time_bucket(t.chunk_interval, now()) + t.chunk_interval * v_i;
            IF EXISTS (SELECT 1 FROM lakets.chunks c WHERE c.table_name = t.table_name AND c.status <> 'dropped'
                         AND c.range_start <= v_start AND c.range_end > v_start) THEN
                CONTINUE;
            END IF;
            SELECT cr.range_start, cr.range_end INTO v_start, v_end
              FROM lakets._chunk_range_for(t.table_name, v_start) cr;
            BEGIN
                PERFORM lakets._create_chunk(t.table_name, v_start, v_end);
                chunks_created := chunks_created + 1;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                deferred := deferred + 1;
            END;
        END LOOP;

        -- 3. Sizes of the resident chunks (cheap catalogue lookups).
        --    Rows are locked in id order, like the write stamps, so the two never deadlock.
        UPDATE lakets.chunks c
           SET size_bytes = s.size
          FROM (SELECT ch.id, coalesce(pg_total_relation_size(to_regclass(format('%I.%I', t.table_schema, ch.chunk_name))), 0) AS size
                  FROM lakets.chunks ch
                 WHERE ch.table_name = t.table_name AND ch.status <> 'dropped'
                 ORDER BY ch.id FOR UPDATE) s
         WHERE c.id = s.id AND c.size_bytes IS DISTINCT FROM s.size;
    END LOOP;
END;
$$;

-- LakeTS-compatible listing of chunks.
CREATE OR REPLACE FUNCTION lakets.show_chunks(p_table text DEFAULT NULL)
RETURNS SETOF lakets.chunks LANGUAGE sql STABLE AS $$
    SELECT * FROM lakets.chunks
     WHERE p_table IS NULL OR table_name = p_table
     ORDER BY table_name, range_start, generation
$$;

-- Chunks for a past range, made ahead of a bulk load (the demo's history backfill).
--
-- The partition manager premakes chunks only ahead of now; rows older than the premade chunks land in
-- the default partition and are moved out one chunk at a time under the parent's ACCESS EXCLUSIVE lock,
-- each move scanning the whole default partition. That is right for the odd late tick and wrong for a
-- day of history: hundreds of thousands of rows would pass through the default partition and hold the
-- parent locked for the whole move. Making the chunks first lets COPY route every row straight into
-- its chunk, with the chunk stamps counting them as usual.
--
-- p_chunk_interval (optional) gives the past range coarser chunks than the table's own interval: the
-- ranges are still aligned buckets, clipped so that they never overlap a live chunk, exactly like
-- chunks left from an earlier interval after a policy change. Each chunk is created in its own
-- subtransaction with the manager's lock timeout: a chunk that cannot be created now is counted as
-- deferred, and its rows fall back to the default partition, which the manager empties later.
CREATE OR REPLACE FUNCTION lakets.create_chunks_for_range(p_table text, p_from timestamptz, p_to timestamptz,
                                                          p_chunk_interval interval DEFAULT NULL,
                                                          OUT chunks_created integer, OUT deferred integer)
LANGUAGE plpgsql AS $$
DECLARE
    t lakets.chronotables;
    v_interval interval;
    v_start timestamptz;
    v_end timestamptz;
    v_covered_end timestamptz;
BEGIN
    chunks_created := 0; deferred := 0;
    SELECT * INTO t FROM lakets.chronotables WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown chronotable %', p_table USING ERRCODE = '42P01';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'create_chunks_for_range needs from < to, got [%, %)', p_from, p_to USING ERRCODE = '22023';
    END IF;
    v_interval := coalesce(p_chunk_interval, t.chunk_interval);
    IF v_interval < t.chunk_interval THEN
        RAISE EXCEPTION 'a past chunk interval (%) finer than the table''s (%) is not supported', v_interval, t.chunk_interval
            USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);

    v_start := lakets.time_bucket(v_interval, p_from);
    WHILE v_start < p_to LOOP
        -- Already covered by a live chunk (premade, or made by an earlier call): skip past it.
        SELECT c.range_end INTO v_covered_end FROM lakets.chunks c
         WHERE c.table_name = p_table AND c.status <> 'dropped'
           AND c.range_start <= v_start AND c.range_end > v_start;
        IF FOUND THEN
            v_start := v_covered_end;
            CONTINUE;
        END IF;
        -- The aligned bucket of this interval, clipped by the live chunks around it.
        v_end := least(lakets.time_bucket(v_interval, v_start) + v_interval,
                       coalesce((SELECT min(c.range_start) FROM lakets.chunks c
                                  WHERE c.table_name = p_table AND c.status <> 'dropped'
                                    AND c.range_start > v_start), 'infinity'));
        BEGIN
            PERFORM lakets._create_chunk(p_table, v_start, v_end);
            chunks_created := chunks_created + 1;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            deferred := deferred + 1;
        END;
        v_start := v_end;
    END LOOP;
END;
$$;
