-- The change feed's registry and the sync's progress record (docs/ARCHITECTURE.md §6). The shadow
-- mirror, its publication and the purge are made by the functions of functions/006_change_feed.sql.

CREATE SCHEMA IF NOT EXISTS lakets_cdf;

CREATE TABLE IF NOT EXISTS lakets.cdf_tables (
    table_name        text        PRIMARY KEY,
    table_schema      text        NOT NULL,
    shadow_table      text        NOT NULL,          -- in schema lakets_cdf
    publication_name  text        NOT NULL,
    slot_name         text        NOT NULL UNIQUE,
    database_name     text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Progress of the sync, our stand-in for Lakebase's wal2delta.tables. `state` is STREAMING only while
-- the sync runs healthily; a gate must also check that updated_at is fresh (the sync refreshes it on
-- every commit and on idle keepalives, about every second) and that the slot is active (ARCHITECTURE.md H6).
-- committed_lsn: every source transaction that committed before this LSN is durable in the lake.
CREATE TABLE IF NOT EXISTS lakets.cdf_state (
    table_name     text        PRIMARY KEY REFERENCES lakets.cdf_tables (table_name) ON DELETE CASCADE,
    state          text        NOT NULL DEFAULT 'STOPPED'
                               CHECK (state IN ('STOPPED', 'STARTING', 'SNAPSHOT', 'STREAMING', 'ERROR', 'UNAVAILABLE')),
    committed_lsn  pg_lsn,
    delta_version  bigint,
    rows_synced    bigint      NOT NULL DEFAULT 0,
    slot_name      text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    detail         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
