-- The product's lifecycle policy: the production defaults here; start-up applies the profile's
-- thresholds (demo: tier after 3 minutes, drop after 6) or LAKETS_TIER_AFTER / LAKETS_DROP_AFTER.

SELECT lakets.add_tiered_retention_policy('stock_ticks', interval '7 days', interval '30 days', 'tick_id')
 WHERE NOT EXISTS (SELECT 1 FROM lakets.retention_policies WHERE table_name = 'stock_ticks');
