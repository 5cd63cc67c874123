-- The lake's missing history (070_lake_history.sql): what the gate expects the lake to hold for a
-- chunk's range, and the marking of dropped chunks whose rows a rebuilt lake does not hold.

-- What the lake must hold for a chunk's range: the chunk itself plus its dropped generations, except
-- those dropped before the lake was lost and rebuilt (their rows are gone with the old lake).
CREATE OR REPLACE FUNCTION lakets._expected_lake_fingerprint(p_chunk_id bigint,
                                                             OUT fp_count bigint, OUT fp_sum_id numeric, OUT fp_sum_us numeric)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_variable
DECLARE
    c lakets.chunks;
BEGIN
    SELECT * INTO STRICT c FROM lakets.chunks WHERE id = p_chunk_id;
    SELECT f.fp_count, f.fp_sum_id, f.fp_sum_us INTO fp_count, fp_sum_id, fp_sum_us FROM lakets.chunk_fingerprint(p_chunk_id) f;
    SELECT fp_count + coalesce(sum(d.fp_count), 0), fp_sum_id + coalesce(sum(d.fp_sum_id), 0),
           fp_sum_us + coalesce(sum(d.fp_sum_us), 0)
      INTO fp_count, fp_sum_id, fp_sum_us
      FROM lakets.chunks d
     WHERE d.table_name = c.table_name AND d.status = 'dropped' AND d.id <> c.id AND d.lake_lost_at IS NULL
       AND d.range_start < c.range_end AND d.range_end > c.range_start;
END;
$$;

-- The lake of p_table was lost and is being rebuilt from the resident chunks: every chunk dropped so
-- far is marked lost. Returns the whole missing history of the table (every chunk ever marked): the
-- chunks, their rows and the time range they covered; zero chunks when nothing is missing.
CREATE OR REPLACE FUNCTION lakets.mark_lake_history_lost(p_table text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    UPDATE lakets.chunks SET lake_lost_at = clock_timestamp()
     WHERE table_name = p_table AND status = 'dropped' AND lake_lost_at IS NULL;
    SELECT jsonb_build_object('chunks', count(*), 'rows', coalesce(sum(row_count), 0),
                              'from', min(range_start), 'to', max(range_end))
      INTO v
      FROM lakets.chunks WHERE table_name = p_table AND lake_lost_at IS NOT NULL;
    RETURN v;
END;
$$;
