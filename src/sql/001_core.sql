-- Core catalogue of the lakets schema: registries, chunk metadata and the job ledger.
-- Every statement is idempotent so a re-run of the migration is harmless.

CREATE SCHEMA IF NOT EXISTS lakets;

-- A ChronoTable is a range-partitioned table on a time column whose partitions (chunks) the
-- partition manager creates ahead of time and tracks through their lifecycle.
CREATE TABLE IF NOT EXISTS lakets.chronotables (
    table_schema     text        NOT NULL DEFAULT 'public',
    table_name       text        PRIMARY KEY,
    time_column      text        NOT NULL,
    chunk_interval   interval    NOT NULL CHECK (chunk_interval > interval '0'),
    premake          integer     NOT NULL DEFAULT 3 CHECK (premake BETWEEN 0 AND 1000),
    -- Ticks beyond now() + max_future_skew are refused: they would poison the last value cache
    -- and pin a far-future chunk (DESIGN §11.10).
    max_future_skew  interval    NOT NULL DEFAULT interval '5 minutes',
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS lakets.chunks (
    id              bigserial   PRIMARY KEY,
    table_name      text        NOT NULL REFERENCES lakets.chronotables (table_name) ON DELETE CASCADE,
    chunk_name      text        NOT NULL,
    -- A range dropped by retention can receive late rows again; the re-created chunk is a new
    -- generation so that no two live rows ever describe one range (DESIGN §11.5).
    generation      integer     NOT NULL DEFAULT 1,
    range_start     timestamptz NOT NULL,
    range_end       timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'tiered', 'dropped')),
    row_count       bigint      NOT NULL DEFAULT 0,
    size_bytes      bigint      NOT NULL DEFAULT 0,
    last_write_lsn  pg_lsn,
    last_write_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    tiered_at       timestamptz,
    dropped_at      timestamptz,
    CHECK (range_end > range_start)
);

CREATE UNIQUE INDEX IF NOT EXISTS chunks_live_range_uq
    ON lakets.chunks (table_name, range_start) WHERE status <> 'dropped';
CREATE UNIQUE INDEX IF NOT EXISTS chunks_generation_uq
    ON lakets.chunks (table_name, range_start, generation);
CREATE INDEX IF NOT EXISTS chunks_status_idx ON lakets.chunks (table_name, status, range_start);

CREATE TABLE IF NOT EXISTS lakets.job_runs (
    id             bigserial   PRIMARY KEY,
    job            text        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    status         text        NOT NULL DEFAULT 'running'
                               CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    rows_affected  bigint,
    detail         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS job_runs_job_idx ON lakets.job_runs (job, started_at DESC);

-- Partitions must be written through their parent: the parent's statement triggers keep the
-- last value cache, chunk stamps and (later) rollups and the change feed correct. Internal
-- maintenance (the partition manager's moves) sets lakets.internal = 'on' for its transaction.
CREATE OR REPLACE FUNCTION lakets.guard_direct_partition_dml() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('lakets.internal', true), '') <> 'on' THEN
        RAISE EXCEPTION 'direct % on partition %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = '42501',
                  HINT = 'Write through the parent table so its triggers run.';
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION lakets._install_partition_guard(p_schema text, p_partition text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_guard_dml ON %I.%I', p_schema, p_partition);
    EXECUTE format('CREATE TRIGGER lakets_guard_dml BEFORE INSERT OR UPDATE OR DELETE ON %I.%I
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.guard_direct_partition_dml()', p_schema, p_partition);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_guard_truncate ON %I.%I', p_schema, p_partition);
    EXECUTE format('CREATE TRIGGER lakets_guard_truncate BEFORE TRUNCATE ON %I.%I
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.guard_direct_partition_dml()', p_schema, p_partition);
END;
$$;

-- time_bucket in the TimescaleDB / LakeTS sense: UTC-aligned buckets from 2000-01-01 (date_bin).
CREATE OR REPLACE FUNCTION lakets.time_bucket(p_width interval, p_ts timestamptz,
                                              p_origin timestamptz DEFAULT '2000-01-01 00:00:00+00')
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(p_width, p_ts, p_origin)
$$;
