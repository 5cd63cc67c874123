-- RollUps (docs/ARCHITECTURE.md §5, H3, H4, H5, H11, H15): regular tables refreshed incrementally
-- from an append-only invalidation log, in dependency order.
--
-- A rollup is defined by a SELECT that reads its source (a ChronoTable or another rollup) through
-- the placeholder {source} in its FROM clause and groups by (bucket, key). Two kinds of work make
-- a refresh:
--   * closing: the buckets that closed since the last refresh (between the old watermark and the
--     new one) are materialised from the source's time range in one pass. Nothing logs them: a
--     bucket past the rollup's log horizon is written to without an invalidation;
--   * the log: buckets already closed that were written again (late ticks, corrections) are
--     logged by the write triggers; the refresh replaces {source} by a derived table holding only
--     the source rows of the (key, bucket) pairs it claimed (a join the planner turns into index
--     range scans for a few buckets and into a hash join for many) and recomputes only those
--     (delete + insert per bucket).
-- The log horizon of a rollup is published outside any transaction (a sequence) ahead of its
-- watermark; before it closes buckets, a refresh waits for the writers that may have read the
-- horizon it replaced, so a tick that was not logged is always in the snapshot that closes its
-- bucket (the race of ARCHITECTURE.md H15).
--
-- One bad bucket never stops the refresh of the others: the claimed buckets are recomputed
-- together in a subtransaction; if that raises, the set is bisected down to the buckets that fail,
-- which go back to the log (they stay pending, so candles() computes them live, exactly) and to
-- lakets.rollup_failed_buckets with the error; they are retried alone on every refresh, a bounded
-- number per refresh, and a success clears the record. A closing pass that raises falls back to
-- the same path, bucket by bucket. The cascade refreshes each rollup in its own subtransaction.
-- Needs the rollup tables (004; lakets.rollup_failed_buckets, 024, when run).

-- ---------------------------------------------------------------------------------------------
-- DAG helpers

-- Topological order: level 0 reads a ChronoTable, level n reads rollups of levels < n.
CREATE OR REPLACE FUNCTION lakets._rollup_levels()
RETURNS TABLE (name text, level integer) LANGUAGE sql STABLE AS $$
    WITH RECURSIVE walk(name, level, path) AS (
        SELECT r.name, 0, ARRAY[r.name] FROM lakets.rollups r WHERE r.depends_on = '{}'
        UNION ALL
        SELECT r.name, w.level + 1, w.path || r.name
          FROM walk w JOIN lakets.rollups r ON w.name = ANY (r.depends_on)
         WHERE NOT r.name = ANY (w.path) AND w.level < 100
    )
    SELECT name, max(level) FROM walk GROUP BY name
$$;

-- The first cycle found in the dependency graph, as a path, or NULL.
CREATE OR REPLACE FUNCTION lakets._rollup_cycle() RETURNS text[] LANGUAGE sql STABLE AS $$
    WITH RECURSIVE walk(start, node, path) AS (
        SELECT r.name, d, ARRAY[r.name] FROM lakets.rollups r, unnest(r.depends_on) d
        UNION ALL
        SELECT w.start, d, w.path || w.node
          FROM walk w JOIN lakets.rollups r ON r.name = w.node, unnest(r.depends_on) d
         WHERE w.node <> w.start AND NOT w.node = ANY (w.path) AND cardinality(w.path) < 100
    )
    SELECT path || node FROM walk WHERE node = start LIMIT 1
$$;

CREATE OR REPLACE FUNCTION lakets._rollup_check_acyclic() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_cycle text[] := lakets._rollup_cycle();
BEGIN
    IF v_cycle IS NOT NULL THEN
        RAISE EXCEPTION 'rollup dependency cycle: %', array_to_string(v_cycle, ' -> ')
            USING ERRCODE = '42P17', HINT = 'A rollup cannot depend, directly or not, on itself.';
    END IF;
END;
$$;

-- The ChronoTable at the root of a rollup (following its sources).
CREATE OR REPLACE FUNCTION lakets._rollup_root(p_name text) RETURNS text LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up(name, source, kind, depth) AS (
        SELECT name, source, source_kind, 0 FROM lakets.rollups WHERE name = p_name
        UNION ALL
        SELECT r.name, r.source, r.source_kind, up.depth + 1
          FROM up JOIN lakets.rollups r ON r.name = up.source
         WHERE up.kind = 'rollup' AND up.depth < 100
    )
    SELECT source FROM up WHERE kind = 'chronotable' LIMIT 1
$$;

-- The rollup and every rollup it reads, directly or not (the "chain" whose pending
-- invalidations make a bucket of p_name not yet final).
CREATE OR REPLACE FUNCTION lakets._rollup_chain(p_name text) RETURNS text[] LANGUAGE plpgsql STABLE AS $$
-- plpgsql (not sql) so that the plan is cached: candles() calls this on every read.
DECLARE
    v_chain text[] := ARRAY[p_name];
    v_next text[] := ARRAY[p_name];
    v_depth integer := 0;
BEGIN
    LOOP
        SELECT coalesce(array_agg(DISTINCT d), '{}') INTO v_next
          FROM lakets.rollups r, unnest(r.depends_on) d
         WHERE r.name = ANY (v_next) AND NOT d = ANY (v_chain);
        EXIT WHEN cardinality(v_next) = 0 OR v_depth > 100;
        v_chain := v_chain || v_next;
        v_depth := v_depth + 1;
    END LOOP;
    RETURN v_chain;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Log horizons. A write trigger logs a bucket only if it starts before its rollup's horizon: the
-- buckets a refresh has closed (or is about to close) need an invalidation, the open ones do not,
-- since the refresh that closes them reads them whole. The horizon lives in a sequence so that a
-- refresh can move it before it commits, and writers see the move at once: a transaction would
-- hide it from them until the refresh had already read its snapshot. It only ever grows; a
-- refresh that rolls back after moving it leaves writers logging a little more than needed.
-- Its value is epoch microseconds; the sequence's minimum (a rollup never refreshed) stands for
-- -infinity: nothing is logged, the first refresh materialises everything before its watermark.

CREATE OR REPLACE FUNCTION lakets._horizon_micros(p_at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_at IS NULL OR p_at = '-infinity' THEN -9223372036854775808
                ELSE (extract(epoch FROM p_at) * 1000000)::bigint END
$$;

CREATE OR REPLACE FUNCTION lakets._horizon_at(p_micros bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_micros = -9223372036854775808 THEN '-infinity'::timestamptz
                ELSE to_timestamp(0) + p_micros * interval '1 microsecond' END
$$;

-- The sequence holding a rollup's horizon (the rollup name is at most 51 characters).
CREATE OR REPLACE FUNCTION lakets._rollup_horizon_sequence(p_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('lakets.%I', '_horizon_' || p_name)
$$;

-- Creates the horizon of a rollup if it has none, at its watermark: everything the watermark
-- covers is logged from now on.
CREATE OR REPLACE FUNCTION lakets._rollup_ensure_horizon(p_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_seq text := lakets._rollup_horizon_sequence(p_name);
BEGIN
    IF to_regclass(v_seq) IS NULL THEN
        EXECUTE format('CREATE SEQUENCE %s AS bigint MINVALUE -9223372036854775808 NO CYCLE', v_seq);
        PERFORM setval(v_seq::regclass, lakets._horizon_micros(r.watermark), true)
           FROM lakets.rollups r WHERE r.name = p_name;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION lakets.rollup_log_horizon(p_name text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_micros bigint;
BEGIN
    EXECUTE format('SELECT last_value FROM %s', lakets._rollup_horizon_sequence(p_name)) INTO v_micros;
    RETURN lakets._horizon_at(v_micros);
END;
$$;

-- Moves a rollup's horizon up to p_at (never down), visible to every session at once.
CREATE OR REPLACE FUNCTION lakets._rollup_publish_horizon(p_name text, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_seq text := lakets._rollup_horizon_sequence(p_name);
BEGIN
    EXECUTE format('SELECT setval(%L::regclass, greatest(last_value, $1), true) FROM %s', v_seq, v_seq)
      USING lakets._horizon_micros(p_at);
END;
$$;

-- Writers of a ChronoTable hold this advisory lock, shared, from before they read the horizons
-- until they end; nothing ever takes it exclusively, so they never wait for it. A refresh reads
-- its holders in pg_locks to know which writers may still act on a horizon it just replaced.
CREATE OR REPLACE FUNCTION lakets._rollup_writers_lock(p_table text, OUT class_key integer, OUT object_key integer)
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtext('lakets.rollup_writers'), hashtext(p_table)
$$;

-- Waits until every writer of p_table that held the writers' lock when this was called has ended
-- (committed or rolled back), at most p_timeout. Returns whether they all did. Writers that
-- arrive meanwhile are not waited for: they read the new horizon.
CREATE OR REPLACE FUNCTION lakets._rollup_await_writers(p_table text, p_timeout interval) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    v_db oid;
    v_class oid;
    v_object oid;
    v_holders text[];
    v_deadline timestamptz := clock_timestamp() + p_timeout;
    v_pause double precision := 0.001;
BEGIN
    SELECT * INTO k FROM lakets._rollup_writers_lock(p_table);
    SELECT d.oid INTO v_db FROM pg_database d WHERE d.datname = current_database();
    -- pg_locks shows the two int4 keys of an advisory lock as oids (unsigned).
    v_class := (k.class_key::bigint & 4294967295)::oid;
    v_object := (k.object_key::bigint & 4294967295)::oid;
    SELECT array_agg(l.virtualtransaction) INTO v_holders FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.database = v_db AND l.classid = v_class AND l.objid = v_object
       AND l.objsubid = 2 AND l.granted AND l.pid IS DISTINCT FROM pg_backend_pid();
    WHILE v_holders IS NOT NULL LOOP
        IF clock_timestamp() >= v_deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_sleep(v_pause);
        v_pause := least(v_pause * 2, 0.05);
        SELECT array_agg(l.virtualtransaction) INTO v_holders FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.database = v_db AND l.classid = v_class AND l.objid = v_object
           AND l.objsubid = 2 AND l.granted AND l.virtualtransaction = ANY (v_holders);
    END LOOP;
    RETURN true;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Invalidation triggers on a ChronoTable: one statement-level trigger per event (transition
-- tables allow one event each, ARCHITECTURE.md H9). Per statement: take the writers' lock (shared),
-- read the horizon of every rollup of the table's DAG, ONE DISTINCT pass over the transition table
-- at the finest bucket of those rollups, the coarser buckets derived from that small set, plain
-- INSERTs into the log of the buckets before each rollup's horizon (minute, hour and day together,
-- ARCHITECTURE.md H4: a late tick makes its minute, hour and day pending at once), and one
-- notification listing every touched (key, finest bucket) pair on channel lakets_candles
-- (ARCHITECTURE.md H11; resync marker past ~7,000 bytes).
CREATE OR REPLACE FUNCTION lakets._install_rollup_triggers(p_table text) RETURNS void
LANGUAGE plpgsql AS $gen$
DECLARE
    t lakets.chronotables;
    v_rollups record;
    v_key text;
    v_keyexpr text;
    v_finest interval;
    v_finest_name text;
    v_parts text[] := '{}';
    v_decls text := '';
    v_reads text := '';
    v_hz text;
    v_src text;
    v_event text;
    v_fn text;
    v_body text;
    v_n integer := 0;
BEGIN
    SELECT * INTO STRICT t FROM lakets.chronotables WHERE table_name = p_table;

    -- Every rollup whose root is this table, with its interval.
    CREATE TEMP TABLE IF NOT EXISTS _lakets_dag (name text, bucket_interval interval, key_column text) ON COMMIT DROP;
    TRUNCATE _lakets_dag;
    INSERT INTO _lakets_dag
    SELECT r.name, r.bucket_interval, r.key_column FROM lakets.rollups r
     WHERE lakets._rollup_root(r.name) = p_table;
    SELECT count(*) INTO v_n FROM _lakets_dag;

    FOREACH v_event IN ARRAY ARRAY['ins', 'upd', 'del'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I.%I', 'lakets_rollup_inv_' || v_event, t.table_schema, t.table_name);
    END LOOP;
    IF v_n = 0 THEN
        DROP TABLE _lakets_dag;
        RETURN;
    END IF;

    SELECT count(DISTINCT coalesce(key_column, '')) INTO v_n FROM _lakets_dag;
    IF v_n > 1 THEN
        RAISE EXCEPTION 'rollups of % must all group by the same key column', p_table USING ERRCODE = '22023';
    END IF;
    SELECT key_column INTO v_key FROM _lakets_dag LIMIT 1;
    v_keyexpr := CASE WHEN v_key IS NULL THEN $$''::text$$ ELSE format('%I::text', v_key) END;
    SELECT bucket_interval, name INTO v_finest, v_finest_name FROM _lakets_dag ORDER BY bucket_interval, name LIMIT 1;

    v_n := 0;
    FOR v_rollups IN SELECT * FROM _lakets_dag ORDER BY bucket_interval, name LOOP
        PERFORM lakets._rollup_ensure_horizon(v_rollups.name);
        v_n := v_n + 1;
        v_hz := 'v_hz_' || v_n;
        v_decls := v_decls || format(E'\n                %s timestamptz;', v_hz);
        v_reads := v_reads || format(E'\n                SELECT lakets._horizon_at(last_value) INTO %s FROM %s;',
                                     v_hz, lakets._rollup_horizon_sequence(v_rollups.name));
        IF v_rollups.bucket_interval = v_finest THEN
            v_parts := v_parts || format('SELECT %L, k, b FROM k WHERE b < %s', v_rollups.name, v_hz);
        ELSIF extract(month FROM v_rollups.bucket_interval) = 0
              AND extract(epoch FROM v_rollups.bucket_interval)::numeric % extract(epoch FROM v_finest)::numeric = 0 THEN
            -- Nested buckets (same origin, multiple width): derive from the finest set.
            v_parts := v_parts || format(
                $q$SELECT %1$L, k, c FROM (SELECT k, date_bin(%2$L::interval, b, '2000-01-01 00:00:00+00') AS c FROM k) n WHERE c < %3$s GROUP BY k, c$q$,
                v_rollups.name, v_rollups.bucket_interval, v_hz);
        ELSE
            v_parts := v_parts || format(
                $q$SELECT DISTINCT %1$L, %2$s, date_bin(%3$L::interval, %4$I, '2000-01-01 00:00:00+00') FROM %%1$s WHERE date_bin(%3$L::interval, %4$I, '2000-01-01 00:00:00+00') < %5$s$q$,
                v_rollups.name, v_keyexpr, v_rollups.bucket_interval, t.time_column, v_hz);
        END IF;
    END LOOP;

    FOREACH v_event IN ARRAY ARRAY['ins', 'upd', 'del'] LOOP
        v_src := CASE v_event
            WHEN 'ins' THEN 'new_rows'
            WHEN 'del' THEN 'old_rows'
            ELSE format('(SELECT %1$s AS %2$I, %3$I FROM old_rows UNION ALL SELECT %1$s, %3$I FROM new_rows) AS moved',
                        coalesce(quote_ident(v_key), 'NULL::text'), coalesce(v_key, '_k'), t.time_column)
        END;
        v_fn := '_rollup_inv_' || v_event || '_' || t.table_name;
        -- The lock comes before the horizons are read: a refresh that sees no holder after moving a
        -- horizon knows that every later writer reads the new one.
        v_body := format($b$
            DECLARE
                v_keys jsonb;%7$s
            BEGIN
                PERFORM pg_advisory_xact_lock_shared(w.class_key, w.object_key) FROM lakets._rollup_writers_lock(%6$L) w;%8$s
                WITH k AS MATERIALIZED (
                    SELECT DISTINCT %1$s AS k, date_bin(%2$L::interval, %3$I, '2000-01-01 00:00:00+00') AS b FROM %4$s
                ), log AS (
                    INSERT INTO lakets.rollup_invalidations (rollup, key, bucket)
                    %5$s
                )
                SELECT jsonb_agg(jsonb_build_array(k, extract(epoch FROM b)::bigint) ORDER BY k, b) INTO v_keys FROM k;
                PERFORM lakets.notify_keys('lakets_candles', %6$L, v_keys);
                RETURN NULL;
            END;
        $b$, v_keyexpr, v_finest, t.time_column, v_src,
           format(array_to_string(v_parts, ' UNION ALL '), v_src), t.table_name, v_decls, v_reads);
        EXECUTE format('CREATE OR REPLACE FUNCTION lakets.%I() RETURNS trigger LANGUAGE plpgsql AS %L', v_fn, v_body);
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I.%I REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()',
                       'lakets_rollup_inv_' || v_event,
                       CASE v_event WHEN 'ins' THEN 'INSERT' WHEN 'upd' THEN 'UPDATE' ELSE 'DELETE' END,
                       t.table_schema, t.table_name,
                       CASE v_event WHEN 'ins' THEN 'NEW TABLE AS new_rows'
                                    WHEN 'upd' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                    ELSE 'OLD TABLE AS old_rows' END,
                       v_fn);
    END LOOP;
    DROP TABLE _lakets_dag;
END;
$gen$;

-- ---------------------------------------------------------------------------------------------
-- create_rollup

CREATE OR REPLACE FUNCTION lakets.create_rollup(p_name text, p_source text, p_bucket_interval interval,
                                                p_query text, p_depends_on text[] DEFAULT NULL,
                                                p_key_column text DEFAULT 'symbol',
                                                p_merge_query text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_time_column text;
    v_deps text[] := coalesce(p_depends_on, '{}');
    v_dep text;
    v_root text;
    v_missing text;
BEGIN
    IF EXISTS (SELECT 1 FROM lakets.rollups WHERE name = p_name) THEN
        RAISE EXCEPTION 'rollup % already exists', p_name USING ERRCODE = '42710';
    END IF;
    IF p_name = ANY (v_deps) OR p_name = p_source THEN
        RAISE EXCEPTION 'rollup dependency cycle: % -> %', p_name, p_name
            USING ERRCODE = '42P17', HINT = 'A rollup cannot depend, directly or not, on itself.';
    END IF;
    IF p_query IS NULL OR position('{source}' IN p_query) = 0 THEN
        RAISE EXCEPTION 'create_rollup: the query must read its source through the placeholder {source} (FROM {source} AS s)'
            USING ERRCODE = '22023';
    END IF;
    IF p_merge_query IS NOT NULL AND position('{rows}' IN p_merge_query) = 0 THEN
        RAISE EXCEPTION 'create_rollup: the merge query must read from the placeholder {rows}' USING ERRCODE = '22023';
    END IF;

    IF EXISTS (SELECT 1 FROM lakets.rollups WHERE name = p_source) THEN
        v_kind := 'rollup';
        v_time_column := 'bucket';
        IF NOT p_source = ANY (v_deps) THEN
            v_deps := v_deps || p_source;
        END IF;
    ELSIF EXISTS (SELECT 1 FROM lakets.chronotables WHERE table_name = p_source) THEN
        v_kind := 'chronotable';
        SELECT time_column INTO v_time_column FROM lakets.chronotables WHERE table_name = p_source;
    ELSE
        RAISE EXCEPTION 'create_rollup: source % is neither a chronotable nor a rollup', p_source USING ERRCODE = '42P01';
    END IF;
    SELECT d INTO v_missing FROM unnest(v_deps) d WHERE NOT EXISTS (SELECT 1 FROM lakets.rollups r WHERE r.name = d) LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'create_rollup: % depends on unknown rollup %', p_name, v_missing USING ERRCODE = '42P01';
    END IF;
    -- Invalidations are propagated bucket by bucket: a rollup must not be finer than what it reads.
    FOREACH v_dep IN ARRAY v_deps LOOP
        IF (SELECT bucket_interval FROM lakets.rollups WHERE name = v_dep) > p_bucket_interval THEN
            RAISE EXCEPTION 'create_rollup: % (%) cannot be finer than its dependency %', p_name, p_bucket_interval, v_dep
                USING ERRCODE = '22023';
        END IF;
    END LOOP;

    INSERT INTO lakets.rollups (name, source, source_kind, bucket_interval, depends_on, key_column,
                                source_time_column, query, merge_query)
    VALUES (p_name, p_source, v_kind, p_bucket_interval, v_deps, p_key_column, v_time_column, p_query, p_merge_query);
    PERFORM lakets._rollup_check_acyclic();
    UPDATE lakets.rollups SET chain = lakets._rollup_chain(name) WHERE name = p_name;
    PERFORM lakets._rollup_ensure_horizon(p_name);

    EXECUTE format('CREATE TABLE %I.%I AS %s WITH NO DATA', 'public', p_name,
                   replace(p_query, '{source}', format('(SELECT * FROM %s WHERE false)',
                       CASE v_kind WHEN 'rollup' THEN format('public.%I', p_source)
                            ELSE (SELECT format('%I.%I', c.table_schema, c.table_name) FROM lakets.chronotables c
                                   WHERE c.table_name = p_source) END)));
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = format('public.%I', p_name)::regclass
                      AND attname = 'bucket' AND NOT attisdropped) THEN
        RAISE EXCEPTION 'create_rollup: the query must return a column named bucket' USING ERRCODE = '42703';
    END IF;
    IF p_key_column IS NULL THEN
        EXECUTE format('ALTER TABLE public.%I ADD PRIMARY KEY (bucket)', p_name);
    ELSE
        EXECUTE format('ALTER TABLE public.%I ADD PRIMARY KEY (%I, bucket)', p_name, p_key_column);
    END IF;

    -- Buckets whose source chunk was dropped by retention are merged, not recomputed from the
    -- few surviving rows (ARCHITECTURE.md H5): the row as it stood when the drop was first noticed is kept
    -- here as the base of every later merge.
    IF v_kind = 'chronotable' THEN
        EXECUTE format('CREATE TABLE IF NOT EXISTS lakets.%I (
                            key text NOT NULL, bucket timestamptz NOT NULL,
                            sealed_chunk_id bigint NOT NULL, base public.%I,
                            PRIMARY KEY (key, bucket))', '_rollup_base_' || p_name, p_name);
    END IF;

    v_root := lakets._rollup_root(p_name);
    IF v_root IS NOT NULL THEN
        PERFORM lakets._install_rollup_triggers(v_root);
    END IF;
END;
$$;

-- Re-points a rollup's dependencies (refusing cycles); the refresh order follows.
CREATE OR REPLACE FUNCTION lakets.set_rollup_dependencies(p_name text, p_depends_on text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lakets.rollups SET depends_on = coalesce(p_depends_on, '{}') WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown rollup %', p_name USING ERRCODE = '42P01';
    END IF;
    PERFORM lakets._rollup_check_acyclic();
    UPDATE lakets.rollups SET chain = lakets._rollup_chain(name);
END;
$$;

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

-- The source rows of the time range [$1, $2), standing for {source} in a closing pass. A time
-- range alone would scan the whole of the chunks it touches (the source's index leads with the
-- key: a day's chunk read in full to close one minute), so the range is read key by key through
-- that index: the keys of a ChronoTable are those of its last value cache whose newest row is at or
-- after the range's start (a key with a row in the range has one); those of a rollup come from a
-- skip scan of its primary key (key, bucket), one index probe per key. A ChronoTable without such
-- a cache is read by time range.
CREATE OR REPLACE FUNCTION lakets._rollup_range_source(r lakets.rollups) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_source text;
    v_lvc text;
BEGIN
    IF r.source_kind = 'rollup' THEN
        v_source := format('public.%I', r.source);
    ELSE
        SELECT format('%I.%I', c.table_schema, c.table_name),
               (SELECT format('%I.%I', c.table_schema, l.lvc_table) FROM lakets.lvc_tables l
                 WHERE l.table_name = c.table_name AND l.key_columns = ARRAY[r.key_column]
                   AND l.time_column = r.source_time_column)
          INTO v_source, v_lvc
          FROM lakets.chronotables c WHERE c.table_name = r.source;
    END IF;
    IF r.key_column IS NULL OR (r.source_kind = 'chronotable' AND v_lvc IS NULL) THEN
        RETURN format('(SELECT * FROM %s WHERE %I >= $1 AND %I < $2)', v_source, r.source_time_column, r.source_time_column);
    ELSIF r.source_kind = 'chronotable' THEN
        RETURN format('(SELECT _lk_s.* FROM %1$s _lk_k JOIN %2$s _lk_s ON _lk_s.%3$I = _lk_k.%3$I AND _lk_s.%4$I >= $1 AND _lk_s.%4$I < $2 WHERE _lk_k.%4$I >= $1)',
                      v_lvc, v_source, r.key_column, r.source_time_column);
    ELSE
        RETURN format($q$(SELECT _lk_s.* FROM (WITH RECURSIVE _lk_keys(k) AS (
                              (SELECT x.%3$I FROM %2$s x ORDER BY x.%3$I LIMIT 1)
                              UNION ALL
                              SELECT (SELECT x.%3$I FROM %2$s x WHERE x.%3$I > _lk_keys.k ORDER BY x.%3$I LIMIT 1)
                                FROM _lk_keys WHERE _lk_keys.k IS NOT NULL)
                          SELECT k FROM _lk_keys WHERE k IS NOT NULL) _lk_k
                JOIN %2$s _lk_s ON _lk_s.%3$I = _lk_k.k AND _lk_s.%4$I >= $1 AND _lk_s.%4$I < $2)$q$,
                      NULL, v_source, r.key_column, r.source_time_column);
    END IF;
END;
$$;

-- Closing pass: materialises every bucket starting in [p_lo, p_hi) from the source's rows of that
-- range, in one statement (one range scan of the source instead of one lookup per bucket), after
-- deleting what the rollup held there. Returns the buckets written. Raises whatever the query
-- raises: the caller runs it in a subtransaction and falls back to the log's path, which
-- isolates a failing bucket. Dependants are not invalidated: buckets covering a range that was
-- open for this rollup are still open for them (their watermark never passes this one), and they
-- close them from the rows written here.
CREATE OR REPLACE FUNCTION lakets._rollup_close_range(r lakets.rollups, p_lo timestamptz, p_hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_written bigint;
BEGIN
    EXECUTE format('DELETE FROM public.%I WHERE bucket >= $1 AND bucket < $2', r.name) USING p_lo, p_hi;
    EXECUTE format('INSERT INTO public.%I SELECT * FROM (%s) q', r.name,
                   replace(r.query, '{source}', lakets._rollup_range_source(r))) USING p_lo, p_hi;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$$;

-- The closing range the log's way: every (key, bucket) of [p_lo, p_hi) that the source has rows
-- for or the rollup holds a row for joins the claim as a fresh bucket (unless claimed already).
-- Returns how many joined.
CREATE OR REPLACE FUNCTION lakets._rollup_claim_range(r lakets.rollups, p_lo timestamptz, p_hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_keyexpr text := CASE WHEN r.key_column IS NULL THEN $k$''::text$k$ ELSE format('%I::text', r.key_column) END;
    v_added bigint;
BEGIN
    EXECUTE format($q$
        INSERT INTO pg_temp._lakets_refresh_claim (ord, k, b, e, known_bad)
        SELECT 1000000000 + row_number() OVER (ORDER BY p.k, p.b), p.k, p.b, p.b + $3, false
          FROM (SELECT %1$s AS k, date_bin($3, s.%2$I, '2000-01-01 00:00:00+00') AS b FROM %3$s s
                UNION
                SELECT %1$s, x.bucket FROM public.%4$I x WHERE x.bucket >= $1 AND x.bucket < $2) p
         WHERE NOT EXISTS (SELECT 1 FROM pg_temp._lakets_refresh_claim c WHERE c.k = p.k AND c.b = p.b)$q$,
        v_keyexpr, r.source_time_column, lakets._rollup_range_source(r), r.name)
      USING p_lo, p_hi, r.bucket_interval;
    GET DIAGNOSTICS v_added = ROW_COUNT;
    RETURN v_added;
END;
$$;

-- Ordinals 1..n again after the claim changed: fresh buckets first, in their order, then the ones
-- that failed before.
CREATE OR REPLACE FUNCTION lakets._rollup_renumber_claim() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pg_temp._lakets_refresh_claim c SET ord = n.o
      FROM (SELECT ctid AS id, row_number() OVER (ORDER BY known_bad, ord) AS o FROM pg_temp._lakets_refresh_claim) n
     WHERE c.ctid = n.id AND c.ord <> n.o;
END;
$$;

-- Databases made before failing buckets were isolated, or before closing passes were reported,
-- have refresh_rollup(text) and refresh_rollup_cascade() with fewer result columns; CREATE OR
-- REPLACE cannot change a result type, so those versions go first.
DO $$
BEGIN
    IF (SELECT NOT ('closed_buckets' = ANY (p.proargnames)) FROM pg_proc p WHERE p.oid = to_regprocedure('lakets.refresh_rollup(text)')) THEN
        DROP FUNCTION lakets.refresh_rollup(text);
    END IF;
    IF (SELECT NOT ('closed_buckets' = ANY (p.proargnames)) FROM pg_proc p WHERE p.oid = to_regprocedure('lakets.refresh_rollup_cascade()')) THEN
        DROP FUNCTION lakets.refresh_rollup_cascade();
    END IF;
END;
$$;

-- Brings one rollup up to date:
--   1. serialise with the other refreshes of this rollup (transaction advisory lock; ingest
--      never takes it, so it is never blocked);
--   2. if the watermark can move (to the start of the bucket open now, never beyond the watermark
--      of what the rollup reads): publish the new log horizon, then, for a rollup of a ChronoTable,
--      wait for the writers that may have read the old one (at most lakets.rollup_writer_wait_ms,
--      default 2000; past that the watermark stays where it is this time, and
--      watermark_held says so);
--   3. claim the log rows with DELETE … RETURNING and deduplicate them into a temp table, fresh
--      buckets first (by key, bucket), then those that failed before (oldest attempt first);
--   4. in later statements (fresh snapshots, which include every writer waited for): materialise
--      the buckets that closed (closed_buckets) in one pass over the source's range, and drop the
--      claimed buckets that pass covered; if that pass raises, its buckets join the claim instead;
--   5. recompute the claimed fresh buckets together, bisecting on error to isolate the failing
--      ones; retry the known failing ones alone; a failing bucket goes back to the log and to
--      lakets.rollup_failed_buckets;
--   6. move the watermark and record the refresh. A failing bucket does not hold the watermark
--      back: it stays pending, and pending buckets are read live.
CREATE OR REPLACE FUNCTION lakets.refresh_rollup(p_name text,
    OUT rollup text, OUT log_rows bigint, OUT buckets bigint, OUT rows_written bigint,
    OUT merged_buckets bigint, OUT watermark timestamptz, OUT duration_ms double precision,
    OUT failed_buckets bigint, OUT deferred_buckets bigint, OUT first_error text,
    OUT closed_buckets bigint, OUT watermark_held boolean)
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
    v_close_lo timestamptz;
    v_close_hi timestamptz;
    v_closed boolean := false;
    v_wait interval;
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
    closed_buckets := 0;
    watermark_held := false;
    PERFORM pg_advisory_xact_lock(hashtext('lakets.refresh_rollup'), hashtext(p_name));
    -- Another refresh may have committed while we waited: read the registry row again.
    SELECT * INTO r FROM lakets.rollups WHERE name = p_name;

    IF to_regclass('pg_temp._lakets_refresh_claim') IS NULL THEN
        CREATE TEMP TABLE _lakets_refresh_claim (ord integer NOT NULL, k text NOT NULL, b timestamptz NOT NULL,
                                                 e timestamptz NOT NULL, dropped_chunk bigint,
                                                 known_bad boolean NOT NULL) ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE pg_temp._lakets_refresh_claim;

    -- Where the watermark can move: the start of the bucket still open now, capped by what the
    -- rollup reads.
    v_wm := date_bin(r.bucket_interval, now(), '2000-01-01 00:00:00+00');
    IF r.depends_on <> '{}' THEN
        IF EXISTS (SELECT 1 FROM lakets.rollups x WHERE x.name = ANY (r.depends_on) AND x.watermark IS NULL) THEN
            v_wm := NULL;
        ELSE
            v_wm := least(v_wm, (SELECT date_bin(r.bucket_interval, min(x.watermark), '2000-01-01 00:00:00+00')
                                   FROM lakets.rollups x WHERE x.name = ANY (r.depends_on)));
        END IF;
    END IF;
    IF v_wm IS NOT NULL AND (r.watermark IS NULL OR v_wm > r.watermark) THEN
        PERFORM lakets._rollup_publish_horizon(p_name, v_wm);
        -- Writers of a rollup's source rollup are refreshes, which log every bucket they rewrite:
        -- only a ChronoTable's writers can have skipped a bucket about to close.
        v_wait := coalesce(nullif(current_setting('lakets.rollup_writer_wait_ms', true), '')::integer, 2000) * interval '1 millisecond';
        IF r.source_kind = 'chronotable' AND NOT lakets._rollup_await_writers(r.source, v_wait) THEN
            watermark_held := true;
            v_wm := r.watermark;
        ELSE
            v_close_lo := coalesce(r.watermark, '-infinity');
            v_close_hi := v_wm;
        END IF;
    ELSE
        v_wm := r.watermark;
    END IF;

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
    SELECT (SELECT count(*) FROM claimed) INTO log_rows;

    -- Closing pass, from a snapshot later than the claim's: it covers every claimed fresh bucket
    -- of its range. Not over a range that lost a chunk to retention (those buckets are merged,
    -- never recomputed whole) nor over a bucket known to fail: the log's path handles both.
    IF v_close_lo < v_close_hi THEN
        IF NOT EXISTS (SELECT 1 FROM lakets.rollup_failed_buckets f
                        WHERE f.rollup = p_name AND f.bucket >= v_close_lo AND f.bucket < v_close_hi)
           AND NOT (r.source_kind = 'chronotable' AND EXISTS (
                    SELECT 1 FROM lakets.chunks ch WHERE ch.table_name = r.source AND ch.status = 'dropped'
                       AND ch.range_start < v_close_hi AND ch.range_end > v_close_lo)) THEN
            BEGIN
                closed_buckets := lakets._rollup_close_range(r, v_close_lo, v_close_hi);
                v_closed := true;
            EXCEPTION WHEN others THEN
                v_closed := false;
            END;
        END IF;
        IF v_closed THEN
            rows_written := closed_buckets;
            DELETE FROM pg_temp._lakets_refresh_claim c WHERE NOT c.known_bad AND c.b >= v_close_lo AND c.b < v_close_hi;
        ELSE
            closed_buckets := lakets._rollup_claim_range(r, v_close_lo, v_close_hi);
        END IF;
        PERFORM lakets._rollup_renumber_claim();
    END IF;
    SELECT count(*), count(*) FILTER (WHERE NOT c.known_bad) INTO v_total, v_fresh FROM pg_temp._lakets_refresh_claim c;
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

    duration_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    UPDATE lakets.rollups x
       SET watermark = CASE WHEN x.watermark IS NULL OR v_wm > x.watermark THEN v_wm ELSE x.watermark END,
           last_refresh_at = clock_timestamp(),
           last_refresh_ms = duration_ms,
           last_refresh_buckets = buckets + closed_buckets,
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
CREATE OR REPLACE FUNCTION lakets.refresh_rollup_cascade()
RETURNS TABLE (rollup text, level integer, log_rows bigint, buckets bigint, rows_written bigint,
               merged_buckets bigint, watermark timestamptz, duration_ms double precision,
               failed_buckets bigint, deferred_buckets bigint, error text,
               closed_buckets bigint, watermark_held boolean)
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
            closed_buckets := f.closed_buckets; watermark_held := f.watermark_held;
        EXCEPTION WHEN others THEN
            rollup := v.name; level := v.level; log_rows := 0; buckets := 0; rows_written := 0;
            merged_buckets := 0; failed_buckets := 0; deferred_buckets := 0; closed_buckets := 0;
            watermark_held := false;
            GET STACKED DIAGNOSTICS error = MESSAGE_TEXT;
            SELECT x.watermark INTO watermark FROM lakets.rollups x WHERE x.name = v.name;
            duration_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The DAG: every rollup with its source, dependencies, dependants, topological level, watermark
-- and pending invalidations, in refresh order.
CREATE OR REPLACE FUNCTION lakets.show_rollup_dag()
RETURNS TABLE (refresh_order integer, level integer, name text, source text, source_kind text,
               bucket_interval interval, depends_on text[], dependants text[], watermark timestamptz,
               pending_invalidations bigint, last_refresh_at timestamptz, last_refresh_ms double precision)
LANGUAGE sql STABLE AS $$
    SELECT (row_number() OVER (ORDER BY l.level, r.name))::integer, l.level, r.name, r.source, r.source_kind,
           r.bucket_interval, r.depends_on,
           coalesce((SELECT array_agg(x.name ORDER BY x.name) FROM lakets.rollups x WHERE r.name = ANY (x.depends_on)), '{}'),
           r.watermark,
           (SELECT count(*) FROM lakets.rollup_invalidations i WHERE i.rollup = r.name),
           r.last_refresh_at, r.last_refresh_ms
      FROM lakets.rollups r JOIN lakets._rollup_levels() l ON l.name = r.name
     ORDER BY l.level, r.name
$$;
