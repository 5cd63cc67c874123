import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../config.ts';

/**
 * Where the embedded Postgres' files live so that the user who runs the server can reach them.
 *
 * Postgres refuses to run as root, so as root it runs as the `postgres` system user, and that user
 * must be able to enter every folder on the way to its data directory and its binaries. A clone
 * under /root (mode 0700, as in most containers and CI runners) allows neither. Then:
 * - the binaries are mirrored (hard links where the file system allows, else copies) into a
 *   folder it can reach: LAKETS_DATA_DIR/pg-bin, or the relocated home below;
 * - a new cluster goes to /var/lib/lakets/<id>/pg, with LAKETS_DATA_DIR/pg a symbolic link to it,
 *   so everything else (credentials, log, lake) stays in LAKETS_DATA_DIR.
 * Every check runs before anything is created, and whatever this run created is removed again if
 * the cluster cannot be made: a failed start leaves nothing half-made behind.
 */
export class PlacementError extends Error {
  override name = 'PlacementError';
}

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

export interface Placement {
  dataDir: string;
  /** The cluster's directory as Postgres is given it (a real path when relocated). */
  pgData: string;
  binaries: PostgresBinaries;
  /** Set as root: the system user Postgres runs as. */
  runAs?: SystemUser;
  /** Set when the cluster lives outside LAKETS_DATA_DIR (LAKETS_DATA_DIR/pg links to it). */
  relocatedTo?: string;
  /** Removes what this run created (new data directory, relocated home, links), for a failed first start. */
  rollback(): void;
}

const SYSTEM_USER = 'postgres';
/** Base of relocated clusters: a system folder the postgres user can reach on any Linux. */
export const RELOCATION_BASE = '/var/lib/lakets';

/** As root: the system user Postgres runs as, created if missing. Otherwise undefined. */
export function postgresSystemUser(): SystemUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): SystemUser => ({
    name: SYSTEM_USER,
    uid: Number(execFileSync('id', ['-u', SYSTEM_USER], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()),
    gid: Number(execFileSync('id', ['-g', SYSTEM_USER], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()),
  });
  try {
    return lookup();
  } catch {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SYSTEM_USER], { stdio: 'ignore' });
      return lookup();
    } catch (err) {
      throw new PlacementError(
        `cannot create the "${SYSTEM_USER}" system user that runs Postgres when lakets runs as root (${(err as Error).message}): ` +
          `create it (useradd --system ${SYSTEM_USER}), run as another user, or set DATABASE_URL`,
      );
    }
  }
}

/** Whether `user` passes `test <flag> target`: the kernel's own answer, ACLs included. */
function userCan(user: SystemUser, flag: '-x' | '-r' | '-w', target: string): boolean {
  const result = spawnSync('test', [flag, target], { uid: user.uid, gid: user.gid, stdio: 'ignore' });
  return result.status === 0;
}

/** The first folder on the way to `target` (an existing path) that `user` cannot enter, if any. */
function blockingFolder(user: SystemUser, target: string): string | undefined {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  let current: string = path.sep;
  for (const part of [undefined, ...parts]) {
    if (part !== undefined) current = path.join(current, part);
    if (fs.statSync(current).isDirectory() && !userCan(user, '-x', current)) return current;
  }
  return undefined;
}

function nearestExisting(target: string): string {
  let current = path.resolve(target);
  while (!fs.existsSync(current)) current = path.dirname(current);
  return current;
}

function modeOf(folder: string): string {
  try {
    return (fs.statSync(folder).mode & 0o777).toString(8).padStart(4, '0');
  } catch {
    return '?';
  }
}

/**
 * The package's native folder (bin, lib, share: Postgres finds lib and share relative to its
 * binary) mirrored into `dest/<version>`; built in a temporary folder and renamed, so a
 * half-made mirror is never used.
 */
function mirrorBinaries(binaries: PostgresBinaries, dest: string): PostgresBinaries {
  const nativeRoot = path.dirname(path.dirname(binaries.postgres));
  let version = 'unknown';
  try {
    version = (JSON.parse(fs.readFileSync(path.join(nativeRoot, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // a layout without package.json: one mirror, refreshed when the binary changes size
  }
  const stamp = `${version}-${fs.statSync(binaries.postgres).size}`;
  const target = path.join(dest, stamp);
  const result = {
    initdb: path.join(target, path.relative(nativeRoot, binaries.initdb)),
    postgres: path.join(target, path.relative(nativeRoot, binaries.postgres)),
  };
  if (fs.existsSync(path.join(target, '.complete'))) return result;
  fs.mkdirSync(dest, { recursive: true, mode: 0o755 });
  fs.chmodSync(dest, 0o755);
  const tmp = path.join(dest, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    copyTree(nativeRoot, tmp);
    fs.writeFileSync(path.join(tmp, '.complete'), `${stamp}\n`, { mode: 0o644 });
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new PlacementError(`cannot copy the Postgres binaries to ${dest}: ${(err as Error).message}`);
  }
  // Mirrors of other versions are no longer used.
  for (const entry of fs.readdirSync(dest)) {
    if (entry !== stamp) fs.rmSync(path.join(dest, entry), { recursive: true, force: true });
  }
  return result;
}

function copyTree(src: string, dest: string): void {
  fs.mkdirSync(dest, { mode: 0o755 });
  fs.chmodSync(dest, 0o755);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    const to = path.join(dest, entry.name);
    if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else if (entry.isDirectory()) copyTree(from, to);
    else if (entry.isFile()) {
      try {
        fs.linkSync(from, to); // same file system: no copy of 60 MB
      } catch {
        fs.copyFileSync(from, to);
        fs.chmodSync(to, fs.statSync(from).mode & 0o755);
      }
    }
  }
}

/** Decides where the cluster and the binaries live, checks it all, then creates what is missing. */
export function placeEmbeddedPostgres(dataDir: string, binaries: PostgresBinaries): Placement {
  const stat = fs.statSync(dataDir, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) throw new PlacementError(`LAKETS_DATA_DIR ${dataDir} exists but is not a directory`);
  const user = postgresSystemUser();
  const pgLink = dataPaths(dataDir).pgData;
  let pgStat = fs.lstatSync(pgLink, { throwIfNoEntry: false });
  // A pg/ folder without PG_VERSION is what an interrupted initdb leaves: made again from scratch.
  const halfMade = pgStat?.isDirectory() === true && !fs.existsSync(path.join(pgLink, 'PG_VERSION'));
  if (halfMade) pgStat = undefined;
  const created: string[] = [];
  const rollback = () => {
    for (const item of created.reverse()) fs.rmSync(item, { recursive: true, force: true });
  };

  // --- checks: nothing is created before they pass ---
  let relocatedTo: string | undefined;
  let relocateNew = false;
  let mirrorInto: string | undefined;
  if (pgStat?.isSymbolicLink()) {
    if (!fs.existsSync(pgLink)) {
      throw new PlacementError(
        `${pgLink} links to ${fs.readlinkSync(pgLink)}, which is gone: restore that cluster, or remove the link to start with a new, empty one`,
      );
    }
    relocatedTo = fs.realpathSync(pgLink);
  }
  if (user) {
    const dataDirBlock = blockingFolder(user, nearestExisting(dataDir));
    if (relocatedTo) {
      const block = blockingFolder(user, relocatedTo);
      if (block) {
        throw new PlacementError(
          `the postgres system user cannot reach the cluster ${relocatedTo} (linked from ${pgLink}): ${block} (mode ${modeOf(block)}) blocks it; make it traversable (chmod o+x ${block})`,
        );
      }
    } else if (pgStat && dataDirBlock) {
      throw new PlacementError(
        `the postgres system user cannot reach the cluster in ${pgLink}: ${dataDirBlock} (mode ${modeOf(dataDirBlock)}) blocks it; ` +
          `make it traversable (chmod o+x ${dataDirBlock}) or set LAKETS_DATA_DIR to a folder outside it`,
      );
    } else if (!pgStat && dataDirBlock) {
      const base = nearestExisting(RELOCATION_BASE);
      const baseBlock = blockingFolder(user, base);
      try {
        fs.accessSync(base, fs.constants.W_OK);
      } catch {
        throw new PlacementError(
          `the postgres system user cannot reach ${dataDir} (${dataDirBlock} is mode ${modeOf(dataDirBlock)}) and ${base} is not writable to hold the cluster instead: ` +
            `set LAKETS_DATA_DIR to a folder it can reach (for example ${RELOCATION_BASE})`,
        );
      }
      if (baseBlock) {
        throw new PlacementError(
          `the postgres system user cannot reach ${dataDir} (${dataDirBlock} is mode ${modeOf(dataDirBlock)}) nor ${RELOCATION_BASE} (${baseBlock} blocks it): ` +
            `set LAKETS_DATA_DIR to a folder it can reach`,
        );
      }
      relocateNew = true;
    }
    if (!userCan(user, '-x', binaries.postgres) || !userCan(user, '-x', binaries.initdb)) {
      mirrorInto = 'pg-bin';
    }
  }

  // --- creation ---
  try {
    if (!stat) {
      fs.mkdirSync(path.dirname(dataDir), { recursive: true });
      fs.mkdirSync(dataDir, { mode: 0o700 });
      created.push(dataDir);
      fs.chmodSync(dataDir, 0o700);
      // As root the postgres user must pass through to pg/: traverse only, for its group alone.
      if (user && !relocateNew) {
        fs.chownSync(dataDir, process.getuid?.() ?? 0, user.gid);
        fs.chmodSync(dataDir, 0o710);
      }
    }
    fs.accessSync(dataDir, fs.constants.W_OK);
    if (halfMade) fs.rmSync(pgLink, { recursive: true, force: true });
    if (relocateNew) {
      fs.mkdirSync(RELOCATION_BASE, { recursive: true, mode: 0o711 });
      const home = path.join(RELOCATION_BASE, `${path.basename(path.dirname(path.resolve(dataDir)))}-${randomBytes(6).toString('hex')}`.replace(/[^A-Za-z0-9._-]/g, '_'));
      fs.mkdirSync(home, { mode: 0o711 });
      created.push(home);
      relocatedTo = path.join(home, 'pg');
      fs.symlinkSync(relocatedTo, pgLink);
      created.push(pgLink);
    }
    let placed = binaries;
    if (mirrorInto) {
      const home = relocatedTo ? path.dirname(relocatedTo) : dataDir;
      placed = mirrorBinaries(binaries, path.join(home, mirrorInto));
      if (user && (!userCan(user, '-x', placed.postgres) || !userCan(user, '-x', placed.initdb))) {
        const block = blockingFolder(user, placed.postgres) ?? placed.postgres;
        throw new PlacementError(`the postgres system user cannot run ${placed.postgres}: ${block} (mode ${modeOf(block)}) blocks it`);
      }
    }
    return {
      dataDir,
      pgData: relocatedTo ?? pgLink,
      binaries: placed,
      ...(user ? { runAs: user } : {}),
      ...(relocatedTo ? { relocatedTo } : {}),
      rollback,
    };
  } catch (err) {
    rollback();
    if (err instanceof PlacementError) throw err;
    throw new PlacementError(`LAKETS_DATA_DIR ${dataDir} is not usable: ${(err as Error).message}`);
  }
}
