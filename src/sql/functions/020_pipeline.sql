-- The pipeline's signals in one round trip (docs/ARCHITECTURE.md §10): what the dashboard, the
-- pipeline query and subscription, and /metrics read; and the pruning of the job ledger.
-- Needs lakets.job_runs (001) and everything it reports on (up to 020).

CREATE OR REPLACE FUNCTION lakets.pipeline_status(p_table text DEFAULT 'stock_ticks') RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t lakets.chronotables;
    v jsonb;
    v_ticks_minute bigint;
    v_default_rows bigint;
BEGIN
    SELECT * INTO t FROM lakets.chronotables WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown chronotable %', p_table USING ERRCODE = '42P01';
    END IF;
    -- Ticks of the last minute of event time: two chunks at most are scanned (partition pruning).
    EXECUTE format('SELECT count(*) FROM %I.%I WHERE %I > now() - interval ''1 minute''',
                   t.table_schema, t.table_name, t.time_column) INTO v_ticks_minute;
    EXECUTE format('SELECT count(*) FROM %I.%I', t.table_schema, t.table_name || '_default') INTO v_default_rows;

    SELECT jsonb_build_object(
        'at', to_jsonb(clock_timestamp()),
        'table', p_table,
        'ticksLastMinute', v_ticks_minute,
        'defaultPartitionRows', v_default_rows,
        'chunkInterval', t.chunk_interval::text,
        'lake', (SELECT jsonb_build_object(
                        'state', s.state, 'committedLsn', s.committed_lsn::text, 'deltaVersion', s.delta_version,
                        'rowsSynced', s.rows_synced, 'updatedAt', s.updated_at, 'slotName', s.slot_name,
                        'slotActive', coalesce(r.active, false),
                        -- WAL the slot holds back (what a stopped sync costs, ARCHITECTURE.md H12) and how far the
                        -- sync's confirmed position trails the server.
                        'slotRetainedBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), r.restart_lsn),
                        'slotLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), r.confirmed_flush_lsn),
                        'error', s.detail->>'error',
                        -- Set when the lake was lost and rebuilt: the history it no longer holds.
                        'missingHistory', s.detail->'missingHistory')
                   FROM lakets.cdf_state s LEFT JOIN pg_replication_slots r ON r.slot_name = s.slot_name
                  WHERE s.table_name = p_table),
        'invalidationsPending', (SELECT count(*) FROM lakets.rollup_invalidations),
        'rollups', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'rollup', d.name, 'watermark', d.watermark, 'pendingInvalidations', d.pending_invalidations,
                        'lastRefreshAt', d.last_refresh_at, 'lastRefreshMs', d.last_refresh_ms) ORDER BY d.refresh_order), '[]'::jsonb)
                      FROM lakets.show_rollup_dag() d),
        'partitions', (
            SELECT jsonb_build_object(
                'active', count(*) FILTER (WHERE status = 'active'),
                'tiered', count(*) FILTER (WHERE status = 'tiered'),
                'dropped', count(*) FILTER (WHERE status = 'dropped'),
                'residentRows', coalesce(sum(row_count) FILTER (WHERE status <> 'dropped'), 0),
                'residentBytes', coalesce(sum(size_bytes) FILTER (WHERE status <> 'dropped'), 0),
                'droppedRows', coalesce(sum(row_count) FILTER (WHERE status = 'dropped'), 0))
              FROM lakets.chunks WHERE table_name = p_table),
        'jobs', (
            SELECT coalesce(jsonb_agg(j ORDER BY j->>'job'), '[]'::jsonb) FROM (
                SELECT jsonb_build_object(
                    'job', last.job,
                    'lastStatus', last.status,
                    'lastStartedAt', last.started_at,
                    'lastFinishedAt', last.finished_at,
                    'lastDurationMs', round(extract(epoch FROM (last.finished_at - last.started_at)) * 1000),
                    'lastRowsAffected', last.rows_affected,
                    'lastError', last.detail->>'error',
                    'failuresLastHour', (SELECT count(*) FROM lakets.job_runs f
                                          WHERE f.job = last.job AND f.status = 'failed'
                                            AND f.started_at > now() - interval '1 hour')) AS j
                  FROM (SELECT DISTINCT ON (job) * FROM lakets.job_runs
                         WHERE status <> 'skipped' AND started_at > now() - interval '1 day'
                         ORDER BY job, id DESC) last) x)
    ) INTO v;
    RETURN v;
END;
$$;

-- Recent job runs are all the dashboard needs; keep the ledger from growing without bound.
CREATE OR REPLACE FUNCTION lakets.prune_job_runs(p_keep interval DEFAULT interval '7 days') RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM lakets.job_runs WHERE started_at < now() - p_keep RETURNING 1)
    SELECT count(*) FROM gone
$$;
