-- Core catalogue of the lakets schema: registries, chunk metadata and the job ledger. Every
-- statement is idempotent. The functions over them are in functions/001_catalog.sql.

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
    -- and pin a far-future chunk (docs/ARCHITECTURE.md H10).
    max_future_skew  interval    NOT NULL DEFAULT interval '5 minutes',
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS lakets.chunks (
    id              bigserial   PRIMARY KEY,
    table_name      text        NOT NULL REFERENCES lakets.chronotables (table_name) ON DELETE CASCADE,
    chunk_name      text        NOT NULL,
    -- A range dropped by retention can receive late rows again; the re-created chunk is a new
    -- generation so that no two live rows ever describe one range (docs/ARCHITECTURE.md H5).
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
