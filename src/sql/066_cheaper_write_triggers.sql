-- The write triggers generated again from today's templates (functions/002_chronotables.sql,
-- functions/003_last_value_cache.sql): the chunk stamps count a statement's rows in the pass that
-- finds its bounds when one chunk holds them all, and the last value cache finds the newest row
-- per key with a hash aggregate instead of sorting the statement.
SELECT lakets._install_chronotable_triggers(c.table_name) FROM lakets.chronotables c ORDER BY c.table_name;

SELECT lakets.enable_lvc(l.table_name, l.key_columns, l.value_columns, l.time_column, l.tiebreak_column, l.channel)
  FROM lakets.lvc_tables l ORDER BY l.table_name;
