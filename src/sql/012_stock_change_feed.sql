-- The product's change feed (docs/ARCHITECTURE.md §6): mirror stock_ticks into
-- lakets_cdf._shadow_stock_ticks and publish it; the sync streams it into LAKETS_DATA_DIR/lake/stock_ticks.

SELECT lakets.enable_sync('public.stock_ticks')
 WHERE NOT EXISTS (SELECT 1 FROM lakets.cdf_tables WHERE table_name = 'stock_ticks');
