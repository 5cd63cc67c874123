import { benchIngest } from './ingest.ts';
import { writeReport } from './harness.ts';

/**
 * npm run bench -- <name> [--rows N] [--batch N]   (lake --store az: the lake on Azurite)
 * Each benchmark measures its target against a baseline in the same run and writes its report
 * into bench/results/latest.json.
 */
const BENCHES: Record<string, (args: Map<string, string>) => Promise<Record<string, unknown>>> = {
  ingest: (args) =>
    benchIngest({
      rows: Number(args.get('rows') ?? 400_000),
      batchSize: Number(args.get('batch') ?? 10_000),
      latencySeconds: Number(args.get('seconds') ?? 10),
      symbols: Number(args.get('symbols') ?? 10),
      triggerSet: (args.get('triggers') ?? 'foundation') as 'foundation' | 'rollups' | 'all',
    }),
  // --parts day,sizes,live (default: all): the day's reads, refresh and ingest ratio; 500 five-minute
  // and four-hour bars (--size-days, --size-rate); 500 minute bars under live ingest (--live-hours).
  candles: async (args) => {
    const parts = new Set((args.get('parts') ?? 'day,sizes,live').split(','));
    const scenarios = await import('./candle-scenarios.ts');
    const report: Record<string, unknown> = {};
    if (parts.has('day')) {
      Object.assign(
        report,
        await (await import('./candles.ts')).benchCandles({
          symbols: Number(args.get('symbols') ?? 10),
          batchSize: Number(args.get('batch') ?? 10_000),
          readRounds: Number(args.get('rounds') ?? 30),
          candlesPerRound: 5,
          refreshRounds: 6,
          rebuildRounds: 2,
          ingestRows: Number(args.get('rows') ?? 400_000),
          ingestSeconds: Number(args.get('seconds') ?? 4),
        }),
      );
    }
    if (parts.has('sizes')) {
      report.sizes = await scenarios.benchCandleSizes({
        days: Number(args.get('size-days') ?? 84),
        ticksPerSecond: Number(args.get('size-rate') ?? 1),
        rounds: Number(args.get('rounds') ?? 30),
        servedPerRound: 5,
      });
    }
    if (parts.has('live')) {
      report.live = await scenarios.benchCandlesLive({
        historyHours: Number(args.get('live-hours') ?? 9),
        historyTicksPerSecond: Number(args.get('live-rate') ?? 10),
        rounds: Number(args.get('rounds') ?? 30),
        servedPerRound: 5,
        refreshSeconds: 10,
      });
    }
    return report;
  },
  abuse: async (args) =>
    (await import('./abuse.ts')).benchAbuse({
      clients: Number(args.get('clients') ?? 20),
      rounds: Number(args.get('rounds') ?? 3),
      seconds: Number(args.get('seconds') ?? 5),
      days: Number(args.get('days') ?? 7),
      stepSeconds: Number(args.get('step') ?? 20),
    }),
  api: async (args) =>
    (await import('./api.ts')).benchApi({
      rounds: Number(args.get('rounds') ?? 3),
      seconds: Number(args.get('seconds') ?? 5),
      connections: Number(args.get('connections') ?? 10),
      tickRate: Number(args.get('rate') ?? 1000),
    }),
  fanout: async (args) =>
    (await import('./fanout.ts')).benchFanout({
      clients: (args.get('clients') ?? '1000,5000,10000').split(',').map(Number),
      tickRate: Number(args.get('rate') ?? 1000),
      seconds: Number(args.get('seconds') ?? 10),
      connectPerSecond: Number(args.get('connect-rate') ?? 2000),
      clientsPerProcess: Number(args.get('per-process') ?? 2500),
    }),
  // --store az|file: the lake on an object store (Azurite) against the demo's load, compaction and reads.
  lake: async (args) =>
    args.has('store')
      ? (await import('./lake-store.ts')).benchLakeStore({
          store: args.get('store') === 'file' ? 'file' : 'az',
          streamSeconds: Number(args.get('seconds') ?? 60),
          backlog: Number(args.get('backlog') ?? 100_000),
          dayCommits: Number(args.get('commits') ?? 2_880),
          rowsPerCommit: Number(args.get('rows-per-commit') ?? 300),
        })
      : (await import('./lake.ts')).benchLake({
          rows: Number(args.get('rows') ?? 400_000),
          batchSize: Number(args.get('batch') ?? 10_000),
          rounds: Number(args.get('rounds') ?? 3),
        }),
};

const argv = process.argv.slice(2);
const names = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
const args = new Map<string, string>();
argv.forEach((a, i) => {
  if (a.startsWith('--')) args.set(a.slice(2), argv[i + 1] ?? '');
});
const selected = names.length ? names : Object.keys(BENCHES);
for (const name of selected) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; available: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  console.log(`== ${name}`);
  const report = await bench(args);
  console.log(JSON.stringify(report, null, 2));
  console.log(`report written to ${writeReport(name, report)}`);
}
process.exit(0);
