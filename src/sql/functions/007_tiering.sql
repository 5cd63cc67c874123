-- Durability-gated tiering and retention (docs/ARCHITECTURE.md §7, H2, H5, H6).
--
-- A chunk leaves Postgres only after the lake provably holds every row of it. SQL cannot read
-- Delta, so the gate is split: the Node jobs (src/lifecycle/durability-gate.ts) lock the chunk,
-- wait for the change-feed sync to pass the WAL position read under that lock, fingerprint the
-- lake's current state for the chunk's range, and pass that proof to tier_chunk() /
-- execute_retention(), which fingerprint the chunk itself under the same lock and compare. Every
-- check fails closed: anything unproven defers to the next run.
--
-- The fingerprint of a set of rows is (count, sum of ids, sum of epoch microseconds): integers,
-- exact in both Postgres and DuckDB, and additive, so the lake's fingerprint of a range equals
-- the resident chunk's plus those of the range's dropped generations (late rows re-created it).
-- Needs lakets.retention_policies and the gate's columns of lakets.chunks (007).

CREATE OR REPLACE FUNCTION lakets.add_tiered_retention_policy(p_table text, p_tier_after interval,
                                                              p_drop_after interval, p_id_column text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_drop_after < p_tier_after THEN
        RAISE EXCEPTION 'drop_after (%) must not be shorter than tier_after (%)', p_drop_after, p_tier_after
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO lakets.retention_policies (table_name, tier_after, drop_after, id_column)
    VALUES (p_table, p_tier_after, p_drop_after, p_id_column)
    ON CONFLICT (table_name) DO UPDATE
       SET tier_after = excluded.tier_after, drop_after = excluded.drop_after,
           id_column = coalesce(excluded.id_column, lakets.retention_policies.id_column);
END;
$$;

-- Is the change-feed sync trustworthy right now? STREAMING alone is not enough (ARCHITECTURE.md H6): the state
-- must be fresh and the slot must be active.
CREATE OR REPLACE FUNCTION lakets.sync_gate(p_table text, OUT ok boolean, OUT reason text,
                                            OUT committed_lsn pg_lsn, OUT delta_version bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s lakets.cdf_state;
BEGIN
    ok := false;
    SELECT * INTO s FROM lakets.cdf_state WHERE table_name = p_table;
    IF NOT FOUND THEN
        reason := 'no change-feed sync for this table'; RETURN;
    END IF;
    committed_lsn := s.committed_lsn;
    delta_version := s.delta_version;
    IF s.state <> 'STREAMING' THEN
        reason := format('sync is %s, not STREAMING', s.state); RETURN;
    END IF;
    IF s.updated_at < clock_timestamp() - interval '30 seconds' THEN
        reason := format('sync state is stale (last update %s)', s.updated_at); RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_replication_slots r WHERE r.slot_name = s.slot_name AND r.active) THEN
        reason := format('replication slot %s is not active', s.slot_name); RETURN;
    END IF;
    IF s.committed_lsn IS NULL THEN
        reason := 'sync has not committed anything yet'; RETURN;
    END IF;
    ok := true;
    reason := 'ok';
END;
$$;

-- Fingerprint of a resident chunk, exact under the caller's SHARE lock on it.
CREATE OR REPLACE FUNCTION lakets.chunk_fingerprint(p_chunk_id bigint,
                                                    OUT fp_count bigint, OUT fp_sum_id numeric, OUT fp_sum_us numeric)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_variable
DECLARE
    c lakets.chunks;
    t lakets.chronotables;
    v_id text;
BEGIN
    SELECT * INTO STRICT c FROM lakets.chunks WHERE id = p_chunk_id;
    SELECT * INTO STRICT t FROM lakets.chronotables WHERE table_name = c.table_name;
    SELECT id_column INTO v_id FROM lakets.retention_policies WHERE table_name = c.table_name;
    EXECUTE format('SELECT count(*), coalesce(sum(%s), 0)::numeric,
                           coalesce(sum((extract(epoch FROM %I) * 1000000)::numeric), 0)
                      FROM %I.%I',
                   CASE WHEN v_id IS NULL THEN '0' ELSE format('%I', v_id) END, t.time_column,
                   t.table_schema, c.chunk_name)
       INTO fp_count, fp_sum_id, fp_sum_us;
END;
$$;

-- What the lake must hold for a chunk's range (lakets._expected_lake_fingerprint) is in
-- functions/070_lake_history.sql: it leaves out the history a lost lake no longer holds.

-- The gate both tier_chunk and execute_retention apply, under the chunk's SHARE lock (taken here,
-- NOWAIT: a writer in flight defers the chunk). p_required_lsn is the WAL position the caller read
-- under that lock: a sync at or past it has received every transaction that wrote the chunk.
CREATE OR REPLACE FUNCTION lakets._durability_gate(p_chunk_id bigint, p_required_lsn pg_lsn,
                                                   p_lake_count bigint, p_lake_sum_id numeric, p_lake_sum_us numeric)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c lakets.chunks;
    t lakets.chronotables;
    g record;
    e record;
BEGIN
    SELECT * INTO STRICT c FROM lakets.chunks WHERE id = p_chunk_id;
    SELECT * INTO STRICT t FROM lakets.chronotables WHERE table_name = c.table_name;
    BEGIN
        EXECUTE format('LOCK TABLE %I.%I IN SHARE MODE NOWAIT', t.table_schema, c.chunk_name);
    EXCEPTION WHEN lock_not_available THEN
        RETURN 'chunk is being written';
    END;
    SELECT * INTO g FROM lakets.sync_gate(c.table_name);
    IF NOT g.ok THEN
        RETURN g.reason;
    END IF;
    IF p_required_lsn IS NULL OR g.committed_lsn < p_required_lsn THEN
        RETURN format('lake has not caught up (committed %s, required %s)', g.committed_lsn, p_required_lsn);
    END IF;
    IF c.last_write_lsn IS NOT NULL AND g.committed_lsn < c.last_write_lsn THEN
        RETURN format('lake has not caught up with the last write (committed %s, last write %s)', g.committed_lsn, c.last_write_lsn);
    END IF;
    IF c.last_write_lsn IS NULL AND c.row_count > 0 THEN
        RETURN 'chunk has rows but no write stamp';
    END IF;
    SELECT * INTO e FROM lakets._expected_lake_fingerprint(p_chunk_id);
    IF (e.fp_count, e.fp_sum_id, e.fp_sum_us) IS DISTINCT FROM (p_lake_count, p_lake_sum_id, p_lake_sum_us) THEN
        RETURN format('lake holds %s rows for the range, Postgres %s (or their checksums differ)', p_lake_count, e.fp_count);
    END IF;
    RETURN NULL; -- proven
END;
$$;

CREATE OR REPLACE FUNCTION lakets._record_gate(p_chunk_id bigint, p_result text) RETURNS text
LANGUAGE sql AS $$
    UPDATE lakets.chunks SET last_gate_result = p_result, last_gate_at = clock_timestamp() WHERE id = p_chunk_id;
    SELECT p_result;
$$;

-- Chunks old enough to tier / to drop, oldest first.
CREATE OR REPLACE FUNCTION lakets.tier_candidates(p_table text) RETURNS SETOF lakets.chunks
LANGUAGE sql STABLE AS $$
    SELECT c.* FROM lakets.chunks c JOIN lakets.retention_policies p USING (table_name)
     WHERE c.table_name = p_table AND c.status = 'active' AND c.range_end <= now() - p.tier_after
     ORDER BY c.range_start, c.generation
$$;

CREATE OR REPLACE FUNCTION lakets.retention_candidates(p_table text) RETURNS SETOF lakets.chunks
LANGUAGE sql STABLE AS $$
    SELECT c.* FROM lakets.chunks c JOIN lakets.retention_policies p USING (table_name)
     WHERE c.table_name = p_table AND c.status = 'tiered' AND c.range_end <= now() - p.drop_after
     ORDER BY c.range_start, c.generation
$$;

-- Flags a chunk tiered when the durability gate proves the lake holds all of its rows; returns
-- 'tiered' or 'deferred: <reason>'. Call it in the transaction that read p_required_lsn.
CREATE OR REPLACE FUNCTION lakets.tier_chunk(p_chunk_id bigint, p_required_lsn pg_lsn, p_lake_count bigint,
                                             p_lake_sum_id numeric, p_lake_sum_us numeric, p_delta_version bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c lakets.chunks;
    v_reason text;
    f record;
BEGIN
    SELECT * INTO c FROM lakets.chunks WHERE id = p_chunk_id FOR UPDATE;
    IF NOT FOUND OR c.status <> 'active' THEN
        RETURN 'skipped: chunk is not active';
    END IF;
    v_reason := lakets._durability_gate(p_chunk_id, p_required_lsn, p_lake_count, p_lake_sum_id, p_lake_sum_us);
    IF v_reason IS NOT NULL THEN
        RETURN lakets._record_gate(p_chunk_id, 'deferred: ' || v_reason);
    END IF;
    SELECT * INTO f FROM lakets.chunk_fingerprint(p_chunk_id);
    UPDATE lakets.chunks
       SET status = 'tiered', tiered_at = clock_timestamp(), row_count = f.fp_count,
           fp_count = f.fp_count, fp_sum_id = f.fp_sum_id, fp_sum_us = f.fp_sum_us,
           lake_delta_version = p_delta_version
     WHERE id = p_chunk_id;
    RETURN lakets._record_gate(p_chunk_id, 'tiered');
END;
$$;

-- Drops a tiered chunk past the drop threshold after re-checking the whole gate at drop time,
-- under the chunk's lock (ARCHITECTURE.md §7: an LSN stamped inside a transaction still open can be overtaken
-- by other commits, so the lock and the WAL position read under it are what make this sound).
-- Rollup buckets still pending over the range are refreshed first (a dropped source cannot be
-- recomputed). The DDL waits at most lock_timeout; then the drop is retried on the next run.
CREATE OR REPLACE FUNCTION lakets.execute_retention(p_chunk_id bigint, p_required_lsn pg_lsn, p_lake_count bigint,
                                                    p_lake_sum_id numeric, p_lake_sum_us numeric)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c lakets.chunks;
    t lakets.chronotables;
    v_reason text;
    f record;
BEGIN
    SELECT * INTO c FROM lakets.chunks WHERE id = p_chunk_id FOR UPDATE;
    IF NOT FOUND OR c.status <> 'tiered' THEN
        RETURN 'skipped: chunk is not tiered';
    END IF;
    SELECT * INTO STRICT t FROM lakets.chronotables WHERE table_name = c.table_name;
    v_reason := lakets._durability_gate(p_chunk_id, p_required_lsn, p_lake_count, p_lake_sum_id, p_lake_sum_us);
    IF v_reason IS NOT NULL THEN
        RETURN lakets._record_gate(p_chunk_id, 'deferred: ' || v_reason);
    END IF;
    IF EXISTS (SELECT 1 FROM lakets.rollup_invalidations i JOIN lakets.rollups r ON r.name = i.rollup
                WHERE r.source = c.table_name
                  AND i.bucket < c.range_end AND i.bucket + r.bucket_interval > c.range_start) THEN
        RETURN lakets._record_gate(p_chunk_id, 'deferred: rollup buckets of the range are pending a refresh');
    END IF;
    -- Buckets past a rollup's watermark are not logged (a refresh materialises them when they
    -- close): the range must be closed too.
    IF EXISTS (SELECT 1 FROM lakets.rollups r
                WHERE r.source = c.table_name AND r.source_kind = 'chronotable'
                  AND (r.watermark IS NULL OR r.watermark < c.range_end)) THEN
        RETURN lakets._record_gate(p_chunk_id, 'deferred: rollup buckets of the range are not closed yet');
    END IF;
    SELECT * INTO f FROM lakets.chunk_fingerprint(p_chunk_id);
    BEGIN
        PERFORM set_config('lock_timeout', '200ms', true);
        PERFORM set_config('lakets.internal', 'on', true);
        EXECUTE format('ALTER TABLE %I.%I DETACH PARTITION %I.%I', t.table_schema, t.table_name, t.table_schema, c.chunk_name);
        EXECUTE format('DROP TABLE %I.%I', t.table_schema, c.chunk_name);
        PERFORM set_config('lakets.internal', 'off', true);
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        RETURN lakets._record_gate(p_chunk_id, 'deferred: lock timeout on the parent table');
    END;
    UPDATE lakets.chunks
       SET status = 'dropped', dropped_at = clock_timestamp(), size_bytes = 0, row_count = f.fp_count,
           fp_count = f.fp_count, fp_sum_id = f.fp_sum_id, fp_sum_us = f.fp_sum_us
     WHERE id = p_chunk_id;
    RETURN lakets._record_gate(p_chunk_id, 'dropped');
END;
$$;
