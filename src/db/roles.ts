import pg from 'pg';
import { scramVerifier, type EmbeddedCredentials } from './embedded/credentials.ts';
import type { Logger } from '../logger.ts';

/**
 * The roles of the embedded Postgres, set up by the superuser after the migrations on every start
 * (each step is idempotent):
 * - the app role (lakets_app) owns the database and every object in it: the jobs, the change-feed
 *   sync and the tick streamer need DDL on partitions, REPLICATION for the slot, COPY FROM STDIN
 *   and pg_logical_emit_message, and nothing a superuser alone may do (COPY TO/FROM PROGRAM or
 *   files, ALTER SYSTEM, untrusted languages);
 * - the API role (lakets_api) reads only: SELECT on the tables, read-only transactions by default,
 *   a statement timeout, a connection limit, and no advisory locks, so that it cannot make job runs
 *   skip by holding their locks.
 * Passwords go to Postgres as SCRAM verifiers, never in clear text.
 */
export interface ApiRoleLimits {
  statementTimeoutMs: number;
  connectionLimit: number;
}

/** Every function that takes an advisory lock: only the app role may call them in our database. */
export const ADVISORY_LOCK_FUNCTIONS = [
  'pg_advisory_lock(bigint)',
  'pg_advisory_lock(integer, integer)',
  'pg_advisory_lock_shared(bigint)',
  'pg_advisory_lock_shared(integer, integer)',
  'pg_try_advisory_lock(bigint)',
  'pg_try_advisory_lock(integer, integer)',
  'pg_try_advisory_lock_shared(bigint)',
  'pg_try_advisory_lock_shared(integer, integer)',
  'pg_advisory_xact_lock(bigint)',
  'pg_advisory_xact_lock(integer, integer)',
  'pg_advisory_xact_lock_shared(bigint)',
  'pg_advisory_xact_lock_shared(integer, integer)',
  'pg_try_advisory_xact_lock(bigint)',
  'pg_try_advisory_xact_lock(integer, integer)',
  'pg_try_advisory_xact_lock_shared(bigint)',
  'pg_try_advisory_xact_lock_shared(integer, integer)',
] as const;

/** Schemas whose objects belong to the application (everything but the system's). */
const USER_SCHEMAS = `SELECT oid FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'`;

/** Objects that are members of an extension keep the extension's owner. */
const NOT_EXTENSION_MEMBER = (catalog: string, oid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oid} AND d.deptype = 'e')`;

/**
 * ALTER … OWNER statements for every object of the user schemas not owned by `owner` yet: schemas,
 * tables (partitions included: ownership does not cascade to them), views, sequences not owned by a
 * column, routines, types and domains, publications and extended statistics.
 */
function ownershipStatementsSql(): string {
  return `
    SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, $1::text) AS stmt
      FROM pg_namespace n
     WHERE n.oid IN (${USER_SCHEMAS}) AND n.nspname <> 'public' AND n.nspowner <> $1::regrole
       AND ${NOT_EXTENSION_MEMBER('pg_namespace', 'n.oid')}
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO %I',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                                 WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                  c.oid::regclass, $1::text)
      FROM pg_class c
     WHERE c.relnamespace IN (${USER_SCHEMAS}) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relowner <> $1::regrole
       AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')}
       -- a sequence behind a serial or identity column follows its table
       AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text)
      FROM pg_proc p
     WHERE p.pronamespace IN (${USER_SCHEMAS}) AND p.proowner <> $1::regrole AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p.oid')}
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype, $1::text)
      FROM pg_type t
     WHERE t.typnamespace IN (${USER_SCHEMAS}) AND t.typowner <> $1::regrole
       AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
       AND ${NOT_EXTENSION_MEMBER('pg_type', 't.oid')}
    UNION ALL
    SELECT format('ALTER PUBLICATION %I OWNER TO %I', pubname, $1::text) FROM pg_publication WHERE pubowner <> $1::regrole
    UNION ALL
    SELECT format('ALTER STATISTICS %I.%I OWNER TO %I', n.nspname, s.stxname, $1::text)
      FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
     WHERE s.stxnamespace IN (${USER_SCHEMAS}) AND s.stxowner <> $1::regrole`;
}

function advisoryGrants(client: pg.Client, grantee: string): string {
  return ADVISORY_LOCK_FUNCTIONS.map(
    (fn) => `REVOKE EXECUTE ON FUNCTION ${fn} FROM PUBLIC; GRANT EXECUTE ON FUNCTION ${fn} TO ${client.escapeIdentifier(grantee)};`,
  ).join('\n');
}

/**
 * Creates or updates both roles, hands the database and its objects to the app role, and applies
 * the API role's limits and grants. `adminUrl` is the superuser on the application's database.
 */
export async function secureEmbeddedDatabase(adminUrl: string, credentials: EmbeddedCredentials, limits: ApiRoleLimits): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'lakets-setup' });
  await client.connect();
  const app = client.escapeIdentifier(credentials.app.user);
  const api = client.escapeIdentifier(credentials.api.user);
  const database = client.escapeIdentifier(new URL(adminUrl).pathname.slice(1));
  try {
    await client.query('BEGIN');
    for (const role of [credentials.app, credentials.api]) {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role.user]);
      if (exists.rowCount === 0) await client.query(`CREATE ROLE ${client.escapeIdentifier(role.user)}`);
    }
    await client.query(`
      ALTER ROLE ${app} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS REPLICATION
        PASSWORD ${client.escapeLiteral(scramVerifier(credentials.app.password))};
      ALTER ROLE ${api} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION
        CONNECTION LIMIT ${Math.trunc(limits.connectionLimit)}
        PASSWORD ${client.escapeLiteral(scramVerifier(credentials.api.password))};
      ALTER ROLE ${api} SET default_transaction_read_only = on;
      ALTER ROLE ${api} SET statement_timeout = ${Math.trunc(limits.statementTimeoutMs)};
      ALTER ROLE ${api} SET idle_in_transaction_session_timeout = ${Math.max(Math.trunc(limits.statementTimeoutMs), 1_000) * 3};
      ALTER DATABASE ${database} OWNER TO ${app};
      -- No one else may connect or create temporary tables; the API role may connect.
      REVOKE ALL ON DATABASE ${database} FROM PUBLIC;
      GRANT CONNECT ON DATABASE ${database} TO ${api};
      -- Writing the server's WAL restart points keeps the sync's restarts short.
      GRANT EXECUTE ON FUNCTION pg_log_standby_snapshot() TO ${app};
      ${advisoryGrants(client, credentials.app.user)}`);
    const { rows } = await client.query<{ stmt: string }>(ownershipStatementsSql(), [credentials.app.user]);
    for (const { stmt } of rows) await client.query(stmt);
    await client.query(`
      GRANT USAGE ON SCHEMA public, lakets TO ${api};
      GRANT SELECT ON ALL TABLES IN SCHEMA public, lakets TO ${api};
      ALTER DEFAULT PRIVILEGES FOR ROLE ${app} IN SCHEMA public, lakets GRANT SELECT ON TABLES TO ${api};
      ALTER DEFAULT PRIVILEGES IN SCHEMA public, lakets GRANT SELECT ON TABLES TO ${api};`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

/**
 * With DATABASE_URL the roles are the operator's: when DATABASE_API_URL names another role than
 * the jobs', keep it from taking the jobs' advisory locks where the jobs' role may change that
 * (a superuser can; on managed servers it usually cannot), and warn with the statements to run
 * otherwise. Returns whether the API role is kept from the locks.
 */
export async function protectJobLocks(url: string, apiUrl: string, logger: Logger): Promise<boolean> {
  const roleOf = async (connectionString: string) => {
    const c = new pg.Client({ connectionString, application_name: 'lakets-setup' });
    c.on('error', () => undefined);
    await c.connect();
    try {
      const { rows } = await c.query<{ role: string }>('SELECT current_user AS role');
      return rows[0]!.role;
    } finally {
      await c.end();
    }
  };
  const client = new pg.Client({ connectionString: url, application_name: 'lakets-setup' });
  await client.connect();
  try {
    const { rows: me } = await client.query<{ role: string; superuser: boolean }>(
      'SELECT current_user AS role, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
    );
    const jobsRole = me[0]!.role;
    const apiRole = apiUrl === url ? jobsRole : await roleOf(apiUrl);
    if (apiRole === jobsRole) return false; // one role for both: nothing to tell apart
    const canLock = async () =>
      (await client.query<{ ok: boolean }>(`SELECT has_function_privilege($1, 'pg_try_advisory_lock(integer, integer)', 'EXECUTE') AS ok`, [apiRole]))
        .rows[0]!.ok;
    if (!(await canLock())) return true;
    if (me[0]!.superuser) {
      await client.query(`BEGIN; ${advisoryGrants(client, jobsRole)} COMMIT;`).catch(async (err: Error) => {
        await client.query('ROLLBACK').catch(() => undefined);
        logger.warn({ err: err.message }, 'could not revoke the advisory-lock functions from PUBLIC');
      });
      if (!(await canLock())) return true;
    }
    logger.warn(
      { apiRole, jobsRole },
      `the API role can take the jobs' advisory locks (a session holding one makes that job's runs skip); as a superuser, run for each ` +
        `pg_advisory*/pg_try_advisory* lock function: REVOKE EXECUTE ON FUNCTION pg_try_advisory_lock(integer, integer) FROM PUBLIC; ` +
        `GRANT EXECUTE ON FUNCTION pg_try_advisory_lock(integer, integer) TO ${jobsRole}; (and make sure ${apiRole} has no direct grant)`,
    );
    return false;
  } finally {
    await client.end();
  }
}
