-- The registry of last value caches (docs/ARCHITECTURE.md §4). The cache itself is made per table by
-- lakets.enable_lvc (functions/003_last_value_cache.sql).

CREATE TABLE IF NOT EXISTS lakets.lvc_tables (
    table_name       text PRIMARY KEY REFERENCES lakets.chronotables (table_name) ON DELETE CASCADE,
    lvc_table        text NOT NULL,
    key_columns      text[] NOT NULL,
    value_columns    text[] NOT NULL,
    time_column      text NOT NULL,
    tiebreak_column  text,
    channel          text NOT NULL DEFAULT 'lakets_lvc'
);
