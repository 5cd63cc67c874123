-- The ledger of history backfills: at most one per table, ever. The demo writes a day of synthetic
-- history on the first start of a new database so the dashboard is full from the first seconds; a
-- restart must never write it again (it would double every candle of that day), and a backfill cut
-- short by a crash resumes where it stopped: each slice of history commits together with its
-- progress (done_until) here.
CREATE TABLE IF NOT EXISTS lakets.backfills (
    table_name   text        PRIMARY KEY REFERENCES lakets.chronotables (table_name) ON DELETE CASCADE,
    -- 'running' until the history is written; 'done'; or 'skipped' when the table already held ticks.
    status       text        NOT NULL CHECK (status IN ('running', 'done', 'skipped')),
    range_start  timestamptz NOT NULL,
    -- Everything before done_until is written.
    done_until   timestamptz NOT NULL,
    rows_written bigint      NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
