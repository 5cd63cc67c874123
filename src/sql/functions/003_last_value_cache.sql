-- Last value cache (docs/ARCHITECTURE.md §4): the newest row per key, kept by statement-level
-- triggers in the writing transaction, monotonic in (time, tiebreak), one notification per
-- statement. Needs lakets.lvc_tables (003).

-- Sends one notification for a statement. Payloads stay under the 8,000-byte NOTIFY limit: past
-- ~7,000 bytes listeners get a resync marker and re-read the cache (docs/ARCHITECTURE.md §4, H11).
CREATE OR REPLACE FUNCTION lakets.notify_keys(p_channel text, p_table text, p_keys jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_payload text;
BEGIN
    IF p_keys IS NULL OR jsonb_array_length(p_keys) = 0 THEN
        RETURN;
    END IF;
    v_payload := jsonb_build_object('table', p_table, 'keys', p_keys)::text;
    IF octet_length(v_payload) > 7000 THEN
        v_payload := jsonb_build_object('table', p_table, 'resync', true)::text;
    END IF;
    PERFORM pg_notify(p_channel, v_payload);
END;
$$;

CREATE OR REPLACE FUNCTION lakets.enable_lvc(p_table text, p_key_columns text[], p_value_columns text[],
                                             p_time_column text DEFAULT 'time',
                                             p_tiebreak_column text DEFAULT NULL,
                                             p_channel text DEFAULT 'lakets_lvc')
RETURNS text LANGUAGE plpgsql AS $gen$
DECLARE
    t lakets.chronotables;
    v_lvc text := '_lvc_' || p_table;
    v_cols text[];            -- every cached column, keys first
    v_col text;
    v_coldefs text;
    v_collist text;
    v_keylist text;
    v_order text;             -- "time DESC, tiebreak DESC"
    v_rowcmp_l text;          -- (l.time, l.tiebreak)
    v_rowcmp_x text;          -- (excluded.time, excluded.tiebreak)
    v_set text;
    v_keyjson text;           -- JSON of a key for the notification payload
    v_key_eq_lo text;         -- o.key = l.key AND ...
    v_key_eq_tk text;
    v_key_eq_bk text;
    v_ident_eq text;          -- the cached row is one of the old rows
BEGIN
    SELECT * INTO t FROM lakets.chronotables WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'enable_lvc: % is not a chronotable', p_table USING ERRCODE = '42P01';
    END IF;
    IF coalesce(array_length(p_key_columns, 1), 0) = 0 THEN
        RAISE EXCEPTION 'enable_lvc: at least one key column is required' USING ERRCODE = '22023';
    END IF;

    v_cols := p_key_columns;
    FOREACH v_col IN ARRAY p_value_columns || ARRAY[p_time_column, p_tiebreak_column] LOOP
        IF v_col IS NOT NULL AND NOT v_col = ANY (v_cols) THEN
            v_cols := v_cols || v_col;
        END IF;
    END LOOP;

    SELECT string_agg(format('%I %s NOT NULL', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY u.ord)
      INTO v_coldefs
      FROM unnest(v_cols) WITH ORDINALITY u(name, ord)
      JOIN pg_attribute a ON a.attrelid = format('%I.%I', t.table_schema, p_table)::regclass AND a.attname = u.name;
    IF v_coldefs IS NULL OR array_length(v_cols, 1) <> (SELECT count(*) FROM pg_attribute a
            WHERE a.attrelid = format('%I.%I', t.table_schema, p_table)::regclass AND a.attname = ANY (v_cols)) THEN
        RAISE EXCEPTION 'enable_lvc: unknown column in %', v_cols USING ERRCODE = '42703';
    END IF;

    SELECT string_agg(format('%I', c), ', ') INTO v_collist FROM unnest(v_cols) c;
    SELECT string_agg(format('%I', c), ', ') INTO v_keylist FROM unnest(p_key_columns) c;
    SELECT string_agg(format('%I = excluded.%I', c, c), ', ') INTO v_set
      FROM unnest(v_cols) c WHERE NOT c = ANY (p_key_columns);
    v_order := format('%I DESC', p_time_column)
               || CASE WHEN p_tiebreak_column IS NULL THEN '' ELSE format(', %I DESC', p_tiebreak_column) END;
    v_rowcmp_l := format('(l.%I', p_time_column)
               || CASE WHEN p_tiebreak_column IS NULL THEN '' ELSE format(', l.%I', p_tiebreak_column) END || ')';
    v_rowcmp_x := replace(v_rowcmp_l, 'l.', 'excluded.');
    IF array_length(p_key_columns, 1) = 1 THEN
        v_keyjson := format('to_jsonb(%%s.%I)', p_key_columns[1]);
    ELSE
        SELECT 'jsonb_build_array(' || string_agg(format('%%1$s.%I', c), ', ') || ')' INTO v_keyjson
          FROM unnest(p_key_columns) c;
    END IF;
    SELECT string_agg(format('o.%I = l.%I', c, c), ' AND ') INTO v_key_eq_lo FROM unnest(p_key_columns) c;
    SELECT string_agg(format('tk.%I = k.%I', c, c), ' AND ') INTO v_key_eq_tk FROM unnest(p_key_columns) c;
    SELECT string_agg(format('b.%I = k.%I', c, c), ' AND ') INTO v_key_eq_bk FROM unnest(p_key_columns) c;
    v_ident_eq := v_key_eq_lo || format(' AND o.%I = l.%I', p_time_column, p_time_column)
               || CASE WHEN p_tiebreak_column IS NULL THEN '' ELSE format(' AND o.%I = l.%I', p_tiebreak_column, p_tiebreak_column) END;

    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I (%s, last_updated timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (%s))',
                   t.table_schema, v_lvc, v_coldefs, v_keylist);

    INSERT INTO lakets.lvc_tables (table_name, lvc_table, key_columns, value_columns, time_column, tiebreak_column, channel)
    VALUES (p_table, v_lvc, p_key_columns, p_value_columns, p_time_column, p_tiebreak_column, p_channel)
    ON CONFLICT (table_name) DO UPDATE
       SET lvc_table = excluded.lvc_table, key_columns = excluded.key_columns, value_columns = excluded.value_columns,
           time_column = excluded.time_column, tiebreak_column = excluded.tiebreak_column, channel = excluded.channel;

    -- INSERT: newest row per key of the statement, upserted in key order (no deadlocks between
    -- concurrent writers) and only if newer than the cached one (late ticks never win). The
    -- newest time per key comes from a hash aggregate, and only the rows at that time are sorted
    -- for the tiebreak: sorting the whole statement by key (text, by collation) was most of the
    -- cost of this trigger on a batch of thousands of rows.
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        DECLARE
            v_keys jsonb;
        BEGIN
            WITH newest AS (
                SELECT %4$s, max(%12$I) AS _lakets_newest FROM new_rows GROUP BY %4$s
            ), latest AS (
                SELECT DISTINCT ON (%13$s) %14$s
                  FROM new_rows n JOIN newest m ON %15$s AND n.%12$I = m._lakets_newest
                 ORDER BY %13$s, %16$s
            ), up AS (
                INSERT INTO %2$s AS l (%3$s, last_updated)
                SELECT %3$s, clock_timestamp() FROM latest ORDER BY %4$s
                ON CONFLICT (%4$s) DO UPDATE SET %6$s, last_updated = excluded.last_updated
                WHERE %7$s < %8$s
                RETURNING l.*
            )
            SELECT jsonb_agg(%9$s) INTO v_keys FROM up;
            PERFORM lakets.notify_keys(%10$L, %11$L, v_keys);
            RETURN NULL;
        END;
        $body$
    $f$, '_lvc_ins_' || p_table, format('%I.%I', t.table_schema, v_lvc), v_collist, v_keylist, v_order, v_set,
       v_rowcmp_l, v_rowcmp_x, format(v_keyjson, 'up'), p_channel, p_table,
       p_time_column,
       (SELECT string_agg(format('n.%I', c), ', ') FROM unnest(p_key_columns) c),
       (SELECT string_agg(format('n.%I', c), ', ') FROM unnest(v_cols) c),
       (SELECT string_agg(format('n.%I = m.%I', c, c), ' AND ') FROM unnest(p_key_columns) c),
       format('n.%I DESC', p_time_column)
           || CASE WHEN p_tiebreak_column IS NULL THEN '' ELSE format(', n.%I DESC', p_tiebreak_column) END);

    -- UPDATE and DELETE (corrections): recompute the touched keys from the table. A cached row
    -- is replaced only when it is one of the rows this statement changed, or by a newer row, so
    -- a concurrent insert of a newer tick is never overwritten by the recomputation. Keys with no
    -- row left lose their cache entry.
    FOREACH v_col IN ARRAY ARRAY['upd', 'del'] LOOP
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION lakets.%1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
            DECLARE
                v_keys jsonb;
            BEGIN
                WITH k AS (
                    SELECT %4$s FROM old_rows %12$s
                ), best AS (
                    SELECT b.* FROM k CROSS JOIN LATERAL (
                        SELECT %3$s FROM %13$s tk WHERE %14$s ORDER BY %5$s LIMIT 1) b
                ), up AS (
                    INSERT INTO %2$s AS l (%3$s, last_updated)
                    SELECT %3$s, clock_timestamp() FROM best ORDER BY %4$s
                    ON CONFLICT (%4$s) DO UPDATE SET %6$s, last_updated = excluded.last_updated
                    WHERE %7$s < %8$s OR EXISTS (SELECT 1 FROM old_rows o WHERE %15$s)
                    RETURNING l.*
                ), gone AS (
                    DELETE FROM %2$s l USING k
                     WHERE %16$s
                       AND NOT EXISTS (SELECT 1 FROM best b WHERE %17$s)
                       AND EXISTS (SELECT 1 FROM old_rows o WHERE %15$s)
                    RETURNING l.*
                )
                SELECT jsonb_agg(x.key) INTO v_keys
                  FROM (SELECT %9$s AS key FROM up UNION ALL SELECT %18$s AS key FROM gone) x;
                PERFORM lakets.notify_keys(%10$L, %11$L, v_keys);
                RETURN NULL;
            END;
            $body$
        $f$, '_lvc_' || v_col || '_' || p_table, format('%I.%I', t.table_schema, v_lvc), v_collist, v_keylist,
           v_order, v_set, v_rowcmp_l, v_rowcmp_x, format(v_keyjson, 'up'), p_channel, p_table,
           CASE WHEN v_col = 'upd' THEN format('UNION SELECT %s FROM new_rows', v_keylist) ELSE format('GROUP BY %s', v_keylist) END,
           format('%I.%I', t.table_schema, p_table), v_key_eq_tk, v_ident_eq,
           replace(v_key_eq_tk, 'tk.', 'l.'), v_key_eq_bk, format(v_keyjson, 'gone'));
    END LOOP;

    EXECUTE format('DROP TRIGGER IF EXISTS lakets_lvc_ins ON %I.%I', t.table_schema, p_table);
    EXECUTE format('CREATE TRIGGER lakets_lvc_ins AFTER INSERT ON %I.%I REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', t.table_schema, p_table, '_lvc_ins_' || p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_lvc_upd ON %I.%I', t.table_schema, p_table);
    EXECUTE format('CREATE TRIGGER lakets_lvc_upd AFTER UPDATE ON %I.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', t.table_schema, p_table, '_lvc_upd_' || p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS lakets_lvc_del ON %I.%I', t.table_schema, p_table);
    EXECUTE format('CREATE TRIGGER lakets_lvc_del AFTER DELETE ON %I.%I REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION lakets.%I()', t.table_schema, p_table, '_lvc_del_' || p_table);
    RETURN v_lvc;
END;
$gen$;
