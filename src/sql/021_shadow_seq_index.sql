-- The shadow purge by index (DESIGN §4.4). purge_synced_shadow deleted through a hashed semi-join over
-- a scan of the whole shadow, so each purge cost the size of the backlog rather than of the batch: a
-- sync catching up on N rows in commits of B rows paid O(N²/B), and a backlog drain spent more CPU
-- purging than writing. With an index on _seq a purge touches only its own rows; ingest pays one
-- insert at the right edge of a btree per change event.

CREATE OR REPLACE FUNCTION lakets._index_shadow_seq(p_shadow text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON lakets_cdf.%I (_seq)', p_shadow || '_seq_idx', p_shadow);
END;
$$;

-- enable_sync: 006's function, then the index. Wrapped rather than copied, so that the long
-- function keeps a single definition.
DO $$
BEGIN
    IF to_regprocedure('lakets._enable_sync_without_index(regclass)') IS NULL THEN
        ALTER FUNCTION lakets.enable_sync(regclass) RENAME TO _enable_sync_without_index;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION lakets.enable_sync(p_table regclass) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_shadow text;
BEGIN
    v_shadow := lakets._enable_sync_without_index(p_table);
    PERFORM lakets._index_shadow_seq(t.shadow_table)
       FROM lakets.cdf_tables t
      WHERE t.table_name = (SELECT c.relname FROM pg_class c WHERE c.oid = p_table);
    RETURN v_shadow;
END;
$$;

-- Shadows enabled before this migration. Their tables are small when the sync keeps up; the build
-- holds back their writers for its duration.
SELECT lakets._index_shadow_seq(shadow_table) FROM lakets.cdf_tables;

-- Same contract as 006 (exactly the `_seq` ranges [lo, hi] the lake holds), now one index range scan
-- per range.
CREATE OR REPLACE FUNCTION lakets.purge_synced_shadow(p_table text, p_lo bigint[], p_hi bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_shadow text;
    v_count bigint;
BEGIN
    SELECT shadow_table INTO v_shadow FROM lakets.cdf_tables WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'purge_synced_shadow: sync is not enabled for %', p_table USING ERRCODE = '42P01';
    END IF;
    IF coalesce(array_length(p_lo, 1), 0) = 0 THEN
        RETURN 0;
    END IF;
    IF array_length(p_lo, 1) <> array_length(p_hi, 1) THEN
        RAISE EXCEPTION 'purge_synced_shadow: % lower and % upper bounds', array_length(p_lo, 1), array_length(p_hi, 1)
            USING ERRCODE = '22023';
    END IF;
    EXECUTE format('DELETE FROM lakets_cdf.%I s USING unnest($1, $2) AS r(lo, hi) WHERE s._seq BETWEEN r.lo AND r.hi', v_shadow)
      USING p_lo, p_hi;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
