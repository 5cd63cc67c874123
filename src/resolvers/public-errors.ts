/**
 * What the public API says about a failure inside the service (a job run, the lake sync): its
 * kind, never its text. Error messages can carry SQL, paths, host names and data; the full text
 * is in the server log (and lakets.job_runs / lakets.cdf_state for operators with database access).
 */
const KINDS: Array<[RegExp, string]> = [
  [/does not enforce create-if-absent/i, 'the lake store does not enforce create-if-absent'],
  [/another process is writing this lake table/i, 'another writer on the lake table'],
  [/replaced by an older copy|bound to another source|does not match the writer/i, 'the lake table belongs elsewhere'],
  [/access denied|container does not exist|bucket does not exist|cannot be listed|(list|read|write|create|upload|download|delete|stat) [a-z0-9]+:\/\/\S+ failed/i, 'lake store unavailable'],
  [/statement timeout|canceling statement|timed? ?out|timeout/i, 'timed out'],
  [/ECONNREFUSED|ECONNRESET|connection (terminated|refused|reset)|terminating connection|Connection terminated|the database system is/i, 'database unavailable'],
  [/lock|deadlock|could not obtain/i, 'lock conflict'],
  [/ENOSPC|no space left/i, 'disk full'],
  [/EACCES|EPERM|permission denied/i, 'permission denied'],
  [/wal_level|replication slot|logical decoding|publication/i, 'replication not available'],
];

export function publicFailure(detail: string | null | undefined): string | null {
  if (detail === null || detail === undefined || detail === '') return null;
  const kind = KINDS.find(([pattern]) => pattern.test(detail))?.[1] ?? 'internal error';
  return `failed: ${kind} (details in the server log)`;
}
