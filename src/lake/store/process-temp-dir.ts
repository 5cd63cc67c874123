// Per-process temp folders of remote lakes (staged uploads, the download cache). A remote lake leaves
// no lake folder on this machine: these live under the OS temp folder or LAKETS_DATA_DIR/cache, are
// removed when the store closes, and those of processes that died (kill -9) are removed by the next
// process that makes one in the same place.

import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';

const NAME = /^(.+)-(\d+)-[0-9a-f]{8}$/;

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates `<root>/<label>-<pid>-<random>` after removing the `<label>-*` folders of dead processes. */
export async function createProcessTempDir(root: string, label: string): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const match = NAME.exec(name);
    if (match && match[1] === label && !alive(Number(match[2]))) {
      await rm(path.join(root, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
  const dir = path.join(root, `${label}-${process.pid}-${randomUUID().slice(0, 8)}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** A temp folder made on first use and removed by `remove()`. */
export class LazyTempDir {
  private dir: Promise<string> | undefined;

  constructor(
    private readonly root: string,
    private readonly label: string,
  ) {}

  get(): Promise<string> {
    this.dir ??= createProcessTempDir(this.root, this.label).catch((error: unknown) => {
      this.dir = undefined;
      throw error;
    });
    return this.dir;
  }

  /** A fresh file name inside the folder. */
  async file(hint: string): Promise<string> {
    const safe = hint.replace(/[^A-Za-z0-9._=-]/g, '_').slice(-80);
    return path.join(await this.get(), `${randomUUID()}-${safe}`);
  }

  async remove(): Promise<void> {
    const pending = this.dir;
    this.dir = undefined;
    if (pending) await rm(await pending.catch(() => ''), { recursive: true, force: true }).catch(() => undefined);
  }
}
