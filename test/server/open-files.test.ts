import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DESCRIPTORS_RESERVED, webSocketCapacity } from '../../src/server/open-files.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

// Every WebSocket client holds a file descriptor: the connection cap must fit in `ulimit -n`.
describe('the WebSocket connection cap and ulimit -n', () => {
  it('reads the soft limit of the running process', () => {
    const script = `const m = await import('./src/server/open-files.ts'); console.log(JSON.stringify([m.openFilesLimit(), m.webSocketCapacity(12000, m.openFilesLimit())]));`;
    const run = spawnSync('bash', ['-c', `ulimit -n 900 && exec "${process.execPath}" --import tsx --input-type=module -e "${script}"`], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual([900, { cap: 900 - DESCRIPTORS_RESERVED, lowered: true, openFiles: 900 }]);
  });

  it('keeps the configured cap when the limit has room for it, or is unknown', () => {
    expect(webSocketCapacity(12_000, 65_536)).toEqual({ cap: 12_000, lowered: false, openFiles: 65_536 });
    expect(webSocketCapacity(12_000, undefined)).toEqual({ cap: 12_000, lowered: false });
    expect(webSocketCapacity(12_000, 100)).toMatchObject({ cap: 16, lowered: true });
  });
});
