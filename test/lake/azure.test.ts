// The Delta writer and reader on Azure Blob Storage (Azurite, a real server started here): commits,
// checkpoints, snapshots, time travel, the range fingerprint and the change-feed state read back from
// the store; DuckDB, independently of our reader, over the files the log lists (mirrored with the Azure
// SDK); concurrent writers (exactly one wins a version); data files in the store before the commit
// that names them; and no lake folder on this machine.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeFeedColumns, changeFeedPartition, sourceBinding } from '../../src/lake/change-feed-table.ts';
import { rangeFingerprint } from '../../src/lake/fingerprint.ts';
import { readChangeFeedCurrentState } from '../../src/lake/change-feed.ts';
import { queryRows } from '../../src/lake/duckdb.ts';
import { liveRowsSql, readRows, verifyLiveFiles } from '../../src/lake/reader.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { LakeReadTooLargeError, withLocalFiles } from '../../src/lake/local-snapshot.ts';
import { quoteLiteral } from '../../src/lake/sql.ts';
import { lakeStoreConfigFromEnv, type LakeStoreConfig } from '../../src/config/lake-store.ts';
import { openLakeTable, type LakeTable } from '../../src/lake/table.ts';
import { DeltaCommitConflictError } from '../../src/lake/writer-errors.ts';
import { DeltaTableWriter, type DeltaWriterOptions, type LakeRow } from '../../src/lake/writer.ts';
import { startAzurite, type StoreServer } from '../helpers/object-stores.ts';

let scratch: string;
let azurite: StoreServer;
const opened: LakeTable[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'lakets-lake-azure-'));
  azurite = await startAzurite();
  await azurite.createBucket('lake');
});
afterAll(async () => {
  for (const table of opened) await table.close();
  await azurite?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const columns = changeFeedColumns([
  { name: 'time', pgType: 'timestamp with time zone' },
  { name: 'symbol', pgType: 'text' },
  { name: 'price', pgType: 'double precision' },
  { name: 'volume', pgType: 'double precision' },
  { name: 'tick_id', pgType: 'bigint' },
]);
const writerOptions: Omit<DeltaWriterOptions, 'tableDir'> = {
  columns,
  partition: changeFeedPartition('time'),
  configuration: sourceBinding({ systemIdentifier: '7301', database: 'lakets', slot: 'lakets_cdf_lakets_stock_ticks', table: 'public.stock_ticks' }),
  tableName: 'stock_ticks',
};

function lakeConfig(prefix: string): LakeStoreConfig {
  return lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: `az://lake/${prefix}`, LAKETS_LAKE_CACHE_DIR: path.join(scratch, 'cache', prefix) }, path.join(scratch, 'data'));
}

function table(prefix: string): LakeTable {
  const t = openLakeTable(lakeConfig(prefix), 'stock_ticks');
  opened.push(t);
  return t;
}

/** A tick event as text (microseconds distinct per row). */
function event(day: string, micros: number, id: number, type = 'insert', lsn = 1000n, price = 100 + id / 4): LakeRow {
  return [`${day} 09:00:00.${String(micros).padStart(6, '0')}+00`, id % 3 === 0 ? 'MSFT' : 'AAPL', String(price), '1.5', String(id), type, lsn.toString(), '2024-03-02 00:00:00.000001+00'];
}

/** Canonical lines and a checksum of rows read back, in any order. */
function digest(rows: readonly Record<string, unknown>[]): { count: number; checksum: string } {
  const lines = rows.map((r) => `${String(r['time'])}|${String(r['symbol'])}|${String(r['price'])}|${String(r['volume'])}|${String(r['tick_id'])}|${String(r['_change_type'])}|${String(r['_lsn'])}`).sort();
  return { count: lines.length, checksum: createHash('sha256').update(lines.join('\n')).digest('hex') };
}

/** Copies every blob under `prefix` to a local folder with the Azure SDK itself (not our store). */
async function mirror(prefix: string): Promise<string> {
  const target = mkdtempSync(path.join(scratch, 'mirror-'));
  const container = BlobServiceClient.fromConnectionString(azurite.env.AZURE_STORAGE_CONNECTION_STRING!).getContainerClient('lake');
  for await (const blob of container.listBlobsFlat({ prefix: `${prefix}/` })) {
    const local = path.join(target, ...blob.name.slice(prefix.length + 1).split('/'));
    mkdirSync(path.dirname(local), { recursive: true });
    await container.getBlobClient(blob.name).downloadToFile(local);
  }
  return target;
}

describe('a change-feed table on Azurite', () => {
  const expected: LakeRow[] = [];
  let lake: LakeTable;

  beforeAll(async () => {
    lake = table('roundtrip');
    const writer = await DeltaTableWriter.openTable(lake, { ...writerOptions, checkpointInterval: 3 });
    expect(writer.tableDir).toBe('az://lake/roundtrip/stock_ticks');
    let id = 0;
    for (let version = 0; version < 8; version++) {
      const rows: LakeRow[] = [];
      for (let i = 0; i < 50; i++) {
        id++;
        rows.push(event(i % 2 ? '2024-03-01' : '2024-03-02', id, id, 'insert', BigInt(1000 + version)));
      }
      if (version === 5) {
        // a correction and a delete of ticks written earlier
        // (tick 1 was written on 2024-03-02 and tick 2 on 2024-03-01: odd positions go to the 1st)
        rows.push(event('2024-03-01', 2, 2, 'update_preimage', 1005n), event('2024-03-01', 2, 2, 'update_postimage', 1005n, 7.25));
        rows.push(event('2024-03-02', 1, 1, 'delete', 1005n));
      }
      const result = await writer.commit({ rows, txn: { appId: 'app', version: BigInt(1000 + version) }, info: { shadowSeqRanges: [[String(version), String(version)]] } });
      expect(result.version).toBe(version);
      expect(result.checkpointed).toBe(version > 0 && version % 3 === 0);
      expected.push(...rows);
    }
  });

  it('reads back every event and the current state, from the checkpoint that _last_checkpoint names', async () => {
    const snapshot = await loadSnapshot(lake);
    expect(snapshot.tableDir).toBe('az://lake/roundtrip/stock_ticks');
    expect(snapshot.version).toBe(7);
    expect(snapshot.checkpointVersion).toBe(6);
    expect(snapshot.warnings).toEqual([]);
    expect(snapshot.txns.get('app')).toBe(1007n);
    expect(snapshot.filesAreLocal).toBe(false);
    expect(snapshot.files.every((f) => f.localPath.startsWith('az://lake/roundtrip/stock_ticks/date=2024-03-0'))).toBe(true);
    expect(() => liveRowsSql(snapshot)).toThrow(/are remote: read them inside withLocalFiles/);

    const rows = await readRows(snapshot);
    const want = expected.map((r) => ({ time: r[0], symbol: r[1], price: Number(r[2]), volume: Number(r[3]), tick_id: r[4], _change_type: r[5], _lsn: r[6] }));
    const canonical = (v: unknown) => (typeof v === 'string' ? v.replace(' ', 'T').replace('+00', 'Z') : v);
    expect(digest(rows)).toEqual(digest(want.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, canonical(v)])))));

    const state = await readChangeFeedCurrentState(snapshot, { keyColumns: ['tick_id'], orderBy: 'tick_id' });
    expect(state).toHaveLength(400 - 1);
    expect(state[0]).toMatchObject({ tick_id: 2n, price: 7.25 });
  });

  it('travels back to versions before the checkpoint', async () => {
    const v2 = await loadSnapshot(lake, { version: 2 });
    expect(v2.version).toBe(2);
    expect(v2.checkpointVersion).toBeNull();
    expect((await readRows(v2, { columns: ['tick_id'] })).length).toBe(150);
    const v4 = await loadSnapshot(lake, { version: 4 });
    expect(v4.checkpointVersion).toBe(3);
  });

  it('fingerprints a time range exactly as the same rows counted directly', async () => {
    const snapshot = await loadSnapshot(lake);
    const from = new Date('2024-03-01T00:00:00Z');
    const to = new Date('2024-03-02T00:00:00Z');
    const fp = await rangeFingerprint(snapshot, from, to, { timeColumn: 'time', idColumn: 'tick_id', dayPartitionColumn: 'date' });
    // The 200 ticks inserted on 2024-03-01 (tick 2's correction keeps its time; tick 1 was on the 2nd).
    const ids = expected.filter((r) => r[5] === 'insert' && String(r[0]).startsWith('2024-03-01')).map((r) => BigInt(r[4] as string));
    expect(ids).toHaveLength(200);
    expect(fp.count).toBe(BigInt(ids.length));
    expect(fp.sumId).toBe(ids.reduce((a, b) => a + b, 0n));
  });

  it('is read by DuckDB alone over the files the log lists (mirrored with the Azure SDK)', async () => {
    const local = await mirror('roundtrip/stock_ticks');
    const [files] = await queryRows(`
      WITH log AS (SELECT json FROM read_ndjson_objects(${quoteLiteral(`${local}/_delta_log/*.json`)}))
      SELECT list(${quoteLiteral(`${local}/`)} || path ORDER BY path) AS files FROM (
        SELECT json ->> '$.add.path' AS path FROM log WHERE json ->> '$.add.path' IS NOT NULL
        EXCEPT
        SELECT json ->> '$.remove.path' FROM log WHERE json ->> '$.remove.path' IS NOT NULL)`);
    const list = files!['files'] as string[];
    expect(list).toHaveLength((await loadSnapshot(lake)).files.length);
    const rows = await queryRows(
      `SELECT strftime("time", '%Y-%m-%dT%H:%M:%S.%fZ') AS "time", symbol, price, volume, tick_id, _change_type, _lsn
         FROM read_parquet([${list.map(quoteLiteral).join(', ')}])`,
    );
    expect(digest(rows)).toEqual(digest(await readRows(await loadSnapshot(lake))));
    expect(existsSync(path.join(local, '_delta_log', '00000000000000000006.checkpoint.parquet'))).toBe(true);
  });

  it('reopens a writer at the latest version with its txn, row count and commit info', async () => {
    const writer = await DeltaTableWriter.openTable(table('roundtrip'), writerOptions);
    expect(writer.version).toBe(7);
    expect(writer.txnVersion('app')).toBe(1007n);
    expect(writer.numRecords).toBe(expected.length);
    expect((await writer.readCommitInfo(5))?.['lakets']).toEqual({ shadowSeqRanges: [['5', '5']] });
    expect(await writer.readCommitInfo(99)).toBeUndefined();
  });

  it('refuses a read that would download more than its limits, before downloading anything', async () => {
    const snapshot = await loadSnapshot(lake);
    let ran = false;
    const tooMany = await withLocalFiles(snapshot, async () => (ran = true), { maxFiles: 3 }).catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(LakeReadTooLargeError);
    expect((tooMany as Error).message).toMatch(/^the read needs 16 files \(\d+ bytes\) of az:\/\/lake\/roundtrip\/stock_ticks, over its limit of 3 files/);
    await expect(withLocalFiles(snapshot, async () => (ran = true), { maxBytes: 100 })).rejects.toBeInstanceOf(LakeReadTooLargeError);
    expect(ran).toBe(false);
    expect(await withLocalFiles(snapshot, async (local) => local.files.length, { maxFiles: 16 })).toBe(16);
  });

  it('reports a live file missing from the store', async () => {
    const copy = table('missing');
    const writer = await DeltaTableWriter.openTable(copy, writerOptions);
    await writer.commit({ rows: [event('2024-03-01', 1, 1), event('2024-03-02', 2, 2)], txn: { appId: 'app', version: 1n } });
    const snapshot = await loadSnapshot(copy);
    await verifyLiveFiles(snapshot);
    await copy.store.delete(snapshot.files[0]!.key!);
    await expect(verifyLiveFiles(snapshot)).rejects.toThrow(/1 unreadable live file\(s\): date=2024-03-01\/part-.*: not in the store/);
  });
});

describe('atomic commits on Azurite', () => {
  it('two writers of the same version: exactly one wins, the other gets a clear conflict and is closed', async () => {
    const lake = table('race');
    const first = await DeltaTableWriter.openTable(lake, writerOptions);
    await first.commit({ rows: [event('2024-03-01', 1, 1)], txn: { appId: 'app', version: 10n } });
    const a = await DeltaTableWriter.openTable(table('race'), writerOptions);
    const b = await DeltaTableWriter.openTable(table('race'), writerOptions);
    const results = await Promise.allSettled([
      a.commit({ rows: [event('2024-03-01', 2, 2)], txn: { appId: 'app', version: 20n } }),
      b.commit({ rows: [event('2024-03-01', 3, 3)], txn: { appId: 'app', version: 30n } }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(DeltaCommitConflictError);
    expect((lost[0] as Error).message).toBe('Delta commit 1 of az://lake/race/stock_ticks already exists: another writer committed it; reopen the table');
    const loser = results[0]!.status === 'rejected' ? a : b;
    await expect(loser.commit({ rows: [] })).rejects.toThrow(/closed/);

    const snapshot = await loadSnapshot(lake);
    expect(snapshot.version).toBe(1);
    const ids = (await readRows(snapshot, { columns: ['tick_id'], orderBy: 'tick_id' })).map((r) => r['tick_id']);
    expect(ids).toEqual([1n, results[0]!.status === 'fulfilled' ? 2n : 3n]);
    expect(snapshot.txns.get('app')).toBe(results[0]!.status === 'fulfilled' ? 20n : 30n);
    // The loser's data file is in the store, named by no commit.
    const parquet = (await lake.store.list('date=')).filter((o) => o.key.endsWith('.parquet'));
    expect(parquet).toHaveLength(3);
    expect(snapshot.files).toHaveLength(2);
  });

  it('makes the data files durable in the store before the commit that names them', async () => {
    const lake = table('ordering');
    const crashing = await DeltaTableWriter.openTable(lake, {
      ...writerOptions,
      onStage: (stage) => {
        // The process "dies" right before the commit request, as the crash tests' SIGKILL does.
        if (stage === 'commit-temp-written') throw new Error('crash before the commit is created');
      },
    });
    const rows = [event('2024-03-01', 1, 1), event('2024-03-02', 2, 2)];
    await expect(crashing.commit({ rows, txn: { appId: 'app', version: 1n } })).rejects.toThrow(/crash before the commit/);
    const seen = (await lake.store.list('')).map((o) => o.key);
    expect(seen.filter((k) => k.endsWith('.parquet'))).toHaveLength(2);
    expect(seen.filter((k) => k.startsWith('_delta_log/'))).toEqual([]);

    // A new writer starts a new table: the orphans are invisible, the commit then names its own files.
    const writer = await DeltaTableWriter.openTable(table('ordering'), writerOptions);
    expect(writer.version).toBe(-1);
    await writer.commit({ rows, txn: { appId: 'app', version: 1n } });
    const snapshot = await loadSnapshot(lake);
    expect(snapshot.files).toHaveLength(2);
    for (const file of snapshot.files) expect(await lake.store.stat(file.key!)).toMatchObject({ size: file.size });
  });

  it('leaves no lake folder on this machine, and its caches go when the table closes', async () => {
    const lake = openLakeTable(lakeConfig('local-footprint'), 'stock_ticks');
    const writer = await DeltaTableWriter.openTable(lake, { ...writerOptions, checkpointInterval: 2 });
    for (let v = 0; v < 3; v++) await writer.commit({ rows: [event('2024-03-01', v + 1, v + 1)], txn: { appId: 'app', version: BigInt(v + 1) } });
    const snapshot = await loadSnapshot(lake);
    expect(snapshot.checkpointVersion).toBe(2);
    await withLocalFiles(snapshot, async (local) => {
      for (const file of local.files) expect(existsSync(file.localPath)).toBe(true);
    });
    expect(existsSync(path.join(scratch, 'data', 'lake'))).toBe(false);
    await lake.close();
    const cacheDir = path.join(scratch, 'cache', 'local-footprint');
    expect(existsSync(cacheDir) ? readdirSync(cacheDir) : []).toEqual([]);
  });
});
