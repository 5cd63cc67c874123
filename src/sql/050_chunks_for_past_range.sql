-- Chunks for a past range, made ahead of a bulk load (the demo's history backfill).
--
-- The partition manager premakes chunks only ahead of now; rows older than the premade chunks land in
-- the default partition and are moved out one chunk at a time under the parent's ACCESS EXCLUSIVE lock,
-- each move scanning the whole default partition. That is right for the odd late tick and wrong for a
-- day of history: hundreds of thousands of rows would pass through the default partition and hold the
-- parent locked for the whole move. Making the chunks first lets COPY route every row straight into
-- its chunk, with the chunk stamps counting them as usual.
--
-- p_chunk_interval (optional) gives the past range coarser chunks than the table's own interval: the
-- ranges are still aligned buckets, clipped so that they never overlap a live chunk, exactly like
-- chunks left from an earlier interval after a policy change. Each chunk is created in its own
-- subtransaction with the manager's lock timeout: a chunk that cannot be created now is counted as
-- deferred, and its rows fall back to the default partition, which the manager empties later.
CREATE OR REPLACE FUNCTION lakets.create_chunks_for_range(p_table text, p_from timestamptz, p_to timestamptz,
                                                          p_chunk_interval interval DEFAULT NULL,
                                                          OUT chunks_created integer, OUT deferred integer)
LANGUAGE plpgsql AS $$
DECLARE
    t lakets.chronotables;
    v_interval interval;
    v_start timestamptz;
    v_end timestamptz;
    v_covered_end timestamptz;
BEGIN
    chunks_created := 0; deferred := 0;
    SELECT * INTO t FROM lakets.chronotables WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown chronotable %', p_table USING ERRCODE = '42P01';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'create_chunks_for_range needs from < to, got [%, %)', p_from, p_to USING ERRCODE = '22023';
    END IF;
    v_interval := coalesce(p_chunk_interval, t.chunk_interval);
    IF v_interval < t.chunk_interval THEN
        RAISE EXCEPTION 'a past chunk interval (%) finer than the table''s (%) is not supported', v_interval, t.chunk_interval
            USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);

    v_start := lakets.time_bucket(v_interval, p_from);
    WHILE v_start < p_to LOOP
        -- Already covered by a live chunk (premade, or made by an earlier call): skip past it.
        SELECT c.range_end INTO v_covered_end FROM lakets.chunks c
         WHERE c.table_name = p_table AND c.status <> 'dropped'
           AND c.range_start <= v_start AND c.range_end > v_start;
        IF FOUND THEN
            v_start := v_covered_end;
            CONTINUE;
        END IF;
        -- The aligned bucket of this interval, clipped by the live chunks around it.
        v_end := least(lakets.time_bucket(v_interval, v_start) + v_interval,
                       coalesce((SELECT min(c.range_start) FROM lakets.chunks c
                                  WHERE c.table_name = p_table AND c.status <> 'dropped'
                                    AND c.range_start > v_start), 'infinity'));
        BEGIN
            PERFORM lakets._create_chunk(p_table, v_start, v_end);
            chunks_created := chunks_created + 1;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            deferred := deferred + 1;
        END;
        v_start := v_end;
    END LOOP;
END;
$$;
