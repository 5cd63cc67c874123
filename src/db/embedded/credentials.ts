import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { dataPaths } from '../../config.ts';

/**
 * The passwords of the embedded Postgres' roles: generated once per data directory, stored in
 * LAKETS_DATA_DIR/credentials.json readable by its owner only (0600), and read by every process
 * that joins the server (one-off jobs next to `npm start`). Nothing secret lives in the source.
 */
export interface RoleCredential {
  user: string;
  password: string;
}

export interface EmbeddedCredentials {
  /** Bootstrap superuser: migrations, roles and grants at start-up only. */
  superuser: RoleCredential;
  /** Owner of the database's objects: jobs, the change-feed sync, the tick streamer, LISTEN. */
  app: RoleCredential;
  /** Read-only role of the GraphQL API. */
  api: RoleCredential;
}

export const SUPERUSER = 'postgres';
export const APP_ROLE = 'lakets_app';
export const API_ROLE = 'lakets_api';

export class CredentialsError extends Error {
  override name = 'CredentialsError';
}

export function credentialsPath(dataDir: string): string {
  return dataPaths(dataDir).credentials;
}

function newPassword(): string {
  // 32 random bytes; base64url needs no escaping in a connection URL or in SQL.
  return randomBytes(32).toString('base64url');
}

function isCredential(value: unknown, user: string): value is RoleCredential {
  const v = value as Partial<RoleCredential> | undefined;
  return typeof v?.password === 'string' && v.password.length >= 16 && v.user === user;
}

/** The stored credentials of a data directory, or undefined when it has none yet. */
export function readCredentials(dataDir: string): EmbeddedCredentials | undefined {
  const file = credentialsPath(dataDir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CredentialsError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: Partial<EmbeddedCredentials>;
  try {
    parsed = JSON.parse(text) as Partial<EmbeddedCredentials>;
  } catch {
    throw new CredentialsError(`${file} is not valid JSON: restore it from a backup, or remove the data directory to start afresh`);
  }
  if (!isCredential(parsed.superuser, SUPERUSER) || !isCredential(parsed.app, APP_ROLE) || !isCredential(parsed.api, API_ROLE)) {
    throw new CredentialsError(`${file} does not hold the passwords of ${SUPERUSER}, ${APP_ROLE} and ${API_ROLE}: restore it from a backup`);
  }
  // A copy or an editor may have widened the mode: the file holds the superuser's password.
  const mode = fs.statSync(file).mode & 0o777;
  if (mode !== 0o600) fs.chmodSync(file, 0o600);
  return { superuser: parsed.superuser, app: parsed.app, api: parsed.api };
}

/** Writes the credentials atomically (temporary file, fsync, rename), mode 0600 from the start. */
export function writeCredentials(dataDir: string, credentials: EmbeddedCredentials): void {
  const file = credentialsPath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(credentials, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** The data directory's credentials, generated and stored on first use. */
export function loadOrCreateCredentials(dataDir: string): { credentials: EmbeddedCredentials; created: boolean } {
  const existing = readCredentials(dataDir);
  if (existing) return { credentials: existing, created: false };
  const credentials: EmbeddedCredentials = {
    superuser: { user: SUPERUSER, password: newPassword() },
    app: { user: APP_ROLE, password: newPassword() },
    api: { user: API_ROLE, password: newPassword() },
  };
  writeCredentials(dataDir, credentials);
  return { credentials, created: true };
}

/** A connection URL on the local embedded server for one role and database. */
export function roleUrl(port: number, role: RoleCredential, database: string): string {
  const url = new URL(`postgres://127.0.0.1:${port}/`);
  url.username = role.user;
  url.password = role.password;
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * The SCRAM-SHA-256 verifier Postgres stores for a password (RFC 5802/7677, as Postgres builds it:
 * 4096 iterations, 16-byte salt). Sending the verifier instead of the password in ALTER ROLE keeps
 * the password out of the server log and of statement statistics.
 */
export function scramVerifier(password: string): string {
  const iterations = 4096;
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
