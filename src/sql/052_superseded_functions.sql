-- Functions no current definition replaces, left in databases made before the function files
-- (src/sql/functions/): the first enable_sync, which 021 had renamed to wrap it (one enable_sync
-- does everything now), and the claim source of the refresh before failing buckets were isolated
-- (replaced by _rollup_claim_source). Nothing calls them.
DROP FUNCTION IF EXISTS lakets._enable_sync_without_index(regclass);
DROP FUNCTION IF EXISTS lakets._rollup_source(lakets.rollups, boolean);
