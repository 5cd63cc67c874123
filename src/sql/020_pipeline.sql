-- The job ledger is read by start time (the pipeline's signals, its pruning: functions/020_pipeline.sql).

CREATE INDEX IF NOT EXISTS job_runs_started_idx ON lakets.job_runs (started_at);
