-- The catalogue's functions: the guard that keeps writes going through a ChronoTable's parent, and
-- time_bucket. Needs the catalogue's tables (001).

-- Partitions must be written through their parent: the parent's statement triggers keep the
-- last value cache, chunk stamps and (later) rollups and the change feed correct. Internal
-- maintenance (the partition manager's moves) sets lakets.internal = 'on' for its transaction.
CREATE OR REPLACE FUNCTION lakets.guard_direct_partition_dml() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('lakets.internal', true), '') <> 'on' THEN
        RAISE EXCEPTION 'direct % on partition %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = '42501',
                  HINT = 'Write through the parent table so its triggers run.';
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION lakets._install_partition_guard(p_schema text, p_partition text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_guard_dml ON %I.%I', p_schema, p_partition);
    EXECUTE format('CREATE TRIGGER lakets_guard_dml BEFORE INSERT OR UPDATE OR DELETE ON %I.%I
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.guard_direct_partition_dml()', p_schema, p_partition);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_guard_truncate ON %I.%I', p_schema, p_partition);
    EXECUTE format('CREATE TRIGGER lakets_guard_truncate BEFORE TRUNCATE ON %I.%I
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.guard_direct_partition_dml()', p_schema, p_partition);
END;
$$;

-- time_bucket in the TimescaleDB / LakeTS sense: UTC-aligned buckets from 2000-01-01 (date_bin).
CREATE OR REPLACE FUNCTION lakets.time_bucket(p_width interval, p_ts timestamptz,
                                              p_origin timestamptz DEFAULT '2000-01-01 00:00:00+00')
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(p_width, p_ts, p_origin)
$$;
