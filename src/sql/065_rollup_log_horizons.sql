-- Invalidations only for buckets a refresh has closed: every rollup gets its log horizon (a
-- sequence, functions/004_rollups.sql), set at its watermark so that everything the watermark
-- already covers keeps being logged, and the write triggers of each ChronoTable that feeds a
-- rollup are generated again to log only the buckets before the horizons. The log rows written
-- before for buckets still open stay until the next refresh claims them.
SELECT lakets._rollup_ensure_horizon(r.name) FROM lakets.rollups r ORDER BY r.name;

SELECT lakets._install_rollup_triggers(c.table_name)
  FROM lakets.chronotables c
 WHERE EXISTS (SELECT 1 FROM lakets.rollups r WHERE lakets._rollup_root(r.name) = c.table_name)
 ORDER BY c.table_name;
