-- Durability-gated tiering and retention (docs/ARCHITECTURE.md §7): the policies and the gate's
-- results on every chunk. The gate itself is in functions/007_tiering.sql.

CREATE TABLE IF NOT EXISTS lakets.retention_policies (
    table_name  text     PRIMARY KEY REFERENCES lakets.chronotables (table_name) ON DELETE CASCADE,
    tier_after  interval NOT NULL CHECK (tier_after >= interval '0'),
    drop_after  interval NOT NULL,
    -- A column identifying rows (bigint), part of the fingerprint; NULL: time only.
    id_column   text,
    CHECK (drop_after >= tier_after)
);

ALTER TABLE lakets.chunks
    ADD COLUMN IF NOT EXISTS fp_count bigint,
    ADD COLUMN IF NOT EXISTS fp_sum_id numeric,
    ADD COLUMN IF NOT EXISTS fp_sum_us numeric,
    ADD COLUMN IF NOT EXISTS lake_delta_version bigint,
    ADD COLUMN IF NOT EXISTS last_gate_result text,
    ADD COLUMN IF NOT EXISTS last_gate_at timestamptz;
