-- Rollup buckets whose recomputation fails (a float8 overflow, a constraint added to a rollup
-- table after the fact, a broken trigger), with the error and the number of attempts. The refresh
-- (functions/004_rollups.sql) isolates them so that they never stop the others: each stays pending,
-- read live by candles(), and is retried on every refresh until it succeeds and its record goes.

CREATE TABLE IF NOT EXISTS lakets.rollup_failed_buckets (
    rollup           text        NOT NULL REFERENCES lakets.rollups (name) ON DELETE CASCADE,
    key              text        NOT NULL,
    bucket           timestamptz NOT NULL,
    error            text        NOT NULL,
    sqlstate         text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_failed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (rollup, key, bucket)
);
