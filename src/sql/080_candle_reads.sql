-- The candle reads of any bar size (functions/011_candles.sql) replace the per-rollup read path:
-- its planning helpers are gone (nothing calls them), and the one question the reads still ask of
-- the chunk catalogue on every call that has live minutes, "was a chunk over these minutes dropped
-- by retention?", gets an index, so that it costs a probe however many chunks were dropped before.
DROP FUNCTION IF EXISTS lakets._candle_plan(text, text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS lakets._ohlcv_bars(text, text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS lakets._ohlcv_live(text, text, timestamptz, timestamptz, timestamptz, timestamptz[]);
DROP FUNCTION IF EXISTS lakets._ohlcv_plan(text, text, timestamptz, timestamptz);

CREATE INDEX IF NOT EXISTS chunks_dropped_range_end_idx ON lakets.chunks (table_name, range_end) WHERE status = 'dropped';
