-- The shadow purge by index (docs/ARCHITECTURE.md §6): shadows enabled before lakets.enable_sync
-- indexed `_seq` get the index now. Their tables are small when the sync keeps up; the build holds
-- back their writers for its duration.

SELECT lakets._index_shadow_seq(shadow_table) FROM lakets.cdf_tables;
