-- The rollup registry and its append-only invalidation log (docs/ARCHITECTURE.md §5, H3). The
-- rollups themselves are made by lakets.create_rollup and refreshed by lakets.refresh_rollup
-- (functions/004_rollups.sql).

CREATE TABLE IF NOT EXISTS lakets.rollups (
    name                  text        PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]{0,50}$'),
    table_schema          text        NOT NULL DEFAULT 'public',
    source                text        NOT NULL,
    source_kind           text        NOT NULL CHECK (source_kind IN ('chronotable', 'rollup')),
    bucket_interval       interval    NOT NULL CHECK (bucket_interval > interval '0'),
    depends_on            text[]      NOT NULL DEFAULT '{}',
    chain                 text[]      NOT NULL DEFAULT '{}', -- itself and every rollup it reads, transitively
    key_column            text,                   -- NULL: one series (no key)
    source_time_column    text        NOT NULL,
    query                 text        NOT NULL,   -- SELECT … FROM {source} … GROUP BY bucket, key
    merge_query           text,                   -- SELECT re-aggregating rows of this rollup from {rows}
    watermark             timestamptz,            -- buckets ending at or before it are closed and materialised
    last_refresh_at       timestamptz,
    last_refresh_ms       double precision,
    last_refresh_buckets  bigint,
    refresh_count         bigint      NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- Append-only (docs/ARCHITECTURE.md H3): writers only INSERT, never upsert, so ingest never waits on a
-- refresh and a refresh never consumes an invalidation it did not see. Duplicates are expected;
-- the refresh claims rows with DELETE … RETURNING and deduplicates them itself.
CREATE TABLE IF NOT EXISTS lakets.rollup_invalidations (
    rollup     text        NOT NULL,
    key        text        NOT NULL DEFAULT '',
    bucket     timestamptz NOT NULL,
    logged_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS rollup_invalidations_idx ON lakets.rollup_invalidations (rollup, key, bucket);
