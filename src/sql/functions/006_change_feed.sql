-- Change feed into the lake (docs/ARCHITECTURE.md §6, H1, H7, H8): the shadow mirror, its
-- inserts-only publication and the purge of shadow rows already in the lake.
--
-- The shadow table lakets_cdf._shadow_<table> is an append-only log of change events: the source's
-- columns, `_change_type` (insert | delete | update_preimage | update_postimage) and `_seq`, an
-- identity for purging. Statement-level AFTER triggers with transition tables write it in the
-- writing transaction (one trigger per event: a transition-table trigger takes one event only, H9).
-- The partition manager's moves write partitions directly and bypass these triggers: a move is not
-- a change of data, so the shadow must not see it.
--
-- Publication and slot names carry the database name: publications are per database, slots are
-- cluster-wide (H8). The slot itself is created by the sync (a transaction that has written
-- cannot create a logical slot), together with an exported snapshot of the shadow, so that no change
-- made before the slot existed is lost. Needs lakets.cdf_tables and lakets.cdf_state (006).

-- A name for a cluster-wide object of this database: lower-case letters, digits and '_' (what slot
-- names allow), at most 63 bytes (longer ones get a hash suffix instead of being cut silently).
CREATE OR REPLACE FUNCTION lakets._cdf_object_name(p_kind text, p_table text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN length(base) <= 63 THEN base ELSE left(base, 54) || '_' || left(md5(base), 8) END
      FROM (SELECT 'lakets_' || p_kind || '_'
                   || regexp_replace(lower(current_database()), '[^a-z0-9_]', '_', 'g') || '_'
                   || regexp_replace(lower(p_table), '[^a-z0-9_]', '_', 'g') AS base) s
$$;

-- The purge deletes by `_seq`: with an index on it a purge touches only its own rows (without one,
-- each purge cost the size of the backlog rather than of the batch). Ingest pays one insert at the
-- right edge of a btree per change event.
CREATE OR REPLACE FUNCTION lakets._index_shadow_seq(p_shadow text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON lakets_cdf.%I (_seq)', p_shadow || '_seq_idx', p_shadow);
END;
$$;

CREATE OR REPLACE FUNCTION lakets.enable_sync(p_table regclass) RETURNS text
LANGUAGE plpgsql AS $gen$
DECLARE
    v_schema text;
    v_name text;
    v_shadow text;
    v_seq text;
    v_pub text;
    v_slot text;
    v_cols text;
BEGIN
    SELECT n.nspname, c.relname INTO v_schema, v_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table;
    v_shadow := '_shadow_' || v_name;
    v_seq := v_shadow || '_seq';
    v_pub := lakets._cdf_object_name('cdf', v_name);
    v_slot := v_pub;

    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO v_cols
      FROM pg_attribute a WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_cols IS NULL THEN
        RAISE EXCEPTION 'enable_sync: % has no columns', p_table USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
                  AND a.attname IN ('_change_type', '_seq', '_lsn', '_commit_timestamp', 'date')) THEN
        RAISE EXCEPTION 'enable_sync: % has a column named like a change-feed column (_change_type, _seq, _lsn, _commit_timestamp, date)', p_table
            USING ERRCODE = '42701';
    END IF;

    -- The sequence hands out blocks per session (CACHE): cheap on ingest, and one writer's rows get
    -- consecutive values, so the purge can name what the lake holds as a few ranges.
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS lakets_cdf.%I CACHE 1000', v_seq);
    EXECUTE format('CREATE TABLE IF NOT EXISTS lakets_cdf.%I (LIKE %I.%I)', v_shadow, v_schema, v_name);
    EXECUTE format('ALTER TABLE lakets_cdf.%I ADD COLUMN IF NOT EXISTS _change_type text NOT NULL', v_shadow);
    EXECUTE format($q$ALTER TABLE lakets_cdf.%I ADD COLUMN IF NOT EXISTS _seq bigint NOT NULL DEFAULT nextval('lakets_cdf.%I')$q$,
                   v_shadow, v_seq);
    EXECUTE format('ALTER SEQUENCE lakets_cdf.%I OWNED BY lakets_cdf.%I._seq', v_seq, v_shadow);
    -- The shadow holds only what the lake does not have yet plus dead rows of the purges: vacuum it
    -- by row count, not by a share of a table that stays small.
    EXECUTE format('ALTER TABLE lakets_cdf.%I SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
                    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000)', v_shadow);

    -- The mirror triggers: generated per table so that the column list is static SQL (cached plans).
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            INSERT INTO lakets_cdf.%2$I (%3$s, _change_type) SELECT %3$s, 'insert' FROM new_rows;
            RETURN NULL;
        END;
        $body$
    $f$, '_cdf_ins_' || v_name, v_shadow, v_cols);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            INSERT INTO lakets_cdf.%2$I (%3$s, _change_type)
            SELECT %3$s, 'update_preimage' FROM old_rows
            UNION ALL
            SELECT %3$s, 'update_postimage' FROM new_rows;
            RETURN NULL;
        END;
        $body$
    $f$, '_cdf_upd_' || v_name, v_shadow, v_cols);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            INSERT INTO lakets_cdf.%2$I (%3$s, _change_type) SELECT %3$s, 'delete' FROM old_rows;
            RETURN NULL;
        END;
        $body$
    $f$, '_cdf_del_' || v_name, v_shadow, v_cols);

    EXECUTE format('DROP TRIGGER IF EXISTS lakets_cdf_ins ON %I.%I', v_schema, v_name);
    EXECUTE format('CREATE TRIGGER lakets_cdf_ins AFTER INSERT ON %I.%I REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', v_schema, v_name, '_cdf_ins_' || v_name);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_cdf_upd ON %I.%I', v_schema, v_name);
    EXECUTE format('CREATE TRIGGER lakets_cdf_upd AFTER UPDATE ON %I.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', v_schema, v_name, '_cdf_upd_' || v_name);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_cdf_del ON %I.%I', v_schema, v_name);
    EXECUTE format('CREATE TRIGGER lakets_cdf_del AFTER DELETE ON %I.%I REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', v_schema, v_name, '_cdf_del_' || v_name);

    -- Inserts only: the purge's deletes never reach the subscriber.
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = v_pub) THEN
        EXECUTE format('CREATE PUBLICATION %I FOR TABLE lakets_cdf.%I WITH (publish = %L)', v_pub, v_shadow, 'insert');
    END IF;

    INSERT INTO lakets.cdf_tables (table_name, table_schema, shadow_table, publication_name, slot_name, database_name)
    VALUES (v_name, v_schema, v_shadow, v_pub, v_slot, current_database())
    ON CONFLICT (table_name) DO NOTHING;
    INSERT INTO lakets.cdf_state (table_name, slot_name)
    SELECT table_name, slot_name FROM lakets.cdf_tables WHERE table_name = v_name
    ON CONFLICT (table_name) DO NOTHING;
    PERFORM lakets._index_shadow_seq(c.shadow_table) FROM lakets.cdf_tables c WHERE c.table_name = v_name;
    RETURN format('lakets_cdf.%I', v_shadow);
END;
$gen$;

-- Removes the mirror triggers and the publication; the slot is dropped too when asked and inactive
-- (a database with a logical slot cannot be dropped). The shadow table and the lake stay.
CREATE OR REPLACE FUNCTION lakets.disable_sync(p_table text, p_drop_slot boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t lakets.cdf_tables;
BEGIN
    SELECT * INTO t FROM lakets.cdf_tables WHERE table_name = p_table;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_cdf_ins ON %I.%I', t.table_schema, t.table_name);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_cdf_upd ON %I.%I', t.table_schema, t.table_name);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_cdf_del ON %I.%I', t.table_schema, t.table_name);
    EXECUTE format('DROP PUBLICATION IF EXISTS %I', t.publication_name);
    IF p_drop_slot THEN
        PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots
         WHERE slot_name = t.slot_name AND NOT active;
    END IF;
    DELETE FROM lakets.cdf_tables WHERE table_name = p_table;
END;
$$;

-- Deletes shadow rows the lake holds: exactly the `_seq` ranges [lo, hi] the sync committed to Delta
-- (it receives `_seq` with every replicated row). Never "everything up to a sequence value": sequence
-- order is not commit order, and a row of a transaction still open may carry a smaller value. The
-- deletes are not published (publish = 'insert'). Returns the number of rows removed.
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
