import type { CdfCrashPoint } from '../config.ts';

/**
 * Crash injection for the exactly-once tests: the process kills itself (SIGKILL, no clean-up) at one
 * point of one commit, so that a restart must recover from exactly that state. Off unless
 * configured (LAKETS_CDF_CRASH_AT).
 */
export class CrashInjection {
  /** Index of the commit in progress: the Delta commits this process made before it. */
  private commitIndex = 0;

  constructor(
    private readonly point: CdfCrashPoint | undefined,
    /** Crash during the commit with this index (0 = the first). */
    private readonly afterCommits = 0,
  ) {}

  /** A commit begins; `commitsSoFar` = the commits this process has made. */
  beginCommit(commitsSoFar: number): void {
    this.commitIndex = commitsSoFar;
  }

  async at(point: CdfCrashPoint): Promise<void> {
    if (this.point !== point || this.commitIndex < this.afterCommits) return;
    // After the acknowledgement: give the status message time to leave the socket first.
    if (point === 'after-ack') await new Promise((resolve) => setTimeout(resolve, 300));
    process.stderr.write(`cdf_sync: crash injected at ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
