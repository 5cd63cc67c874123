-- History the lake no longer holds (docs/ARCHITECTURE.md §6, "A lost lake"): when the lake is lost
-- or emptied, the sync rebuilds it from the resident chunks; the rows of chunks dropped before then
-- existed only in the old lake. Such chunks are marked here, never refilled or invented: the
-- durability gate stops expecting them in the lake, and `lake` reports them as missing.

ALTER TABLE lakets.chunks ADD COLUMN IF NOT EXISTS lake_lost_at timestamptz;
