import os from 'node:os';
import pg from 'pg';
import { benchDatabase, percentile } from './harness.ts';
import { forkServer, postgresCpu, postgresCpuBetween, type ChildServer } from './load.ts';

export interface FanoutOptions {
  /** Client counts, measured one after the other on the same server. */
  clients: number[];
  /** Ticks per second (in batches every 100 ms, every symbol in each batch). */
  tickRate: number;
  /** Seconds of measurement once every client is subscribed. */
  seconds: number;
  /** New connections per second while clients connect. */
  connectPerSecond: number;
  /** Clients per client process. */
  clientsPerProcess: number;
}

const SYMBOLS = ['AAPL', 'MSFT', 'NVDA', 'GOOGL', 'AMZN', 'TSLA', 'JPM', 'V', 'BTC-USD', 'ETH-USD'];
const BATCH_MS = 100;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface WorkerReport {
  clients: number;
  connected: number;
  failed: number;
  withInitialPrice: number;
  messages: number;
  duplicates: number;
  measuredMessages: number;
  latencies: number[];
}

/**
 * The tick writer: every 100 ms one INSERT of `rate / 10` ticks over every symbol (each symbol's
 * newest at the batch's time), committed, then the commit time of each symbol's newest tick sent
 * to the client processes: a client's message for (symbol, time) was caused by that commit.
 */
class BatchWriter {
  private timer: NodeJS.Timeout | undefined;
  private prices = new Map(SYMBOLS.map((s, i) => [s, 100 + i * 10]));
  batches = 0;
  private busy = false;

  constructor(
    private readonly client: pg.Client,
    private readonly rate: number,
    private readonly onCommit: (keys: string[], commitAt: number) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.batch(), BATCH_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async batch(): Promise<void> {
    if (this.busy) return; // a slow commit: skip a beat rather than pile up
    this.busy = true;
    try {
      const perSymbol = Math.max(1, Math.round((this.rate * BATCH_MS) / 1000 / SYMBOLS.length));
      const t0 = Date.now();
      const times: string[] = [];
      const symbols: string[] = [];
      const prices: number[] = [];
      for (const s of SYMBOLS) {
        for (let i = perSymbol - 1; i >= 0; i--) {
          const p = Math.max(1, this.prices.get(s)! * (1 + (Math.random() - 0.5) * 0.001));
          this.prices.set(s, p);
          times.push(new Date(t0 - i).toISOString());
          symbols.push(s);
          prices.push(Math.round(p * 100) / 100);
        }
      }
      await this.client.query(
        `INSERT INTO stock_ticks (time, symbol, price, volume)
         SELECT t, s, p, 1 FROM unnest($1::timestamptz[], $2::text[], $3::float8[]) AS u(t, s, p)`,
        [times, symbols, prices],
      );
      const commitAt = now();
      this.batches++;
      this.onCommit(
        SYMBOLS.map((s) => `${s}|${new Date(t0).toISOString()}`),
        commitAt,
      );
    } finally {
      this.busy = false;
    }
  }
}

async function request<T>(worker: ChildServer, message: unknown, field: string): Promise<T> {
  return new Promise((resolve) => {
    worker.child.on('message', function reply(m: Record<string, unknown>) {
      if (!(field in m)) return;
      worker.child.off('message', reply);
      resolve(m[field] as T);
    });
    worker.child.send(message as never);
  });
}

/**
 * npm run bench -- fanout: priceUpdated to 1,000, 5,000 and 10,000 real graphql-ws clients (one
 * WebSocket and one subscription each, on one symbol each, the ten symbols in turn) of one server
 * process while ticks stream at `tickRate`/s; per size: every client connected and served, p50/p99
 * commit→receive, duplicate messages while clients connect, the server's CPU. The clients live in
 * child processes of their own (`clientsPerProcess` each), the server in another: the clients' CPU
 * is not counted as the server's, though all share the machine's cores.
 */
export async function benchFanout(options: FanoutOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('fanout');
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  let server: ChildServer | undefined;
  let workers: ChildServer[] = [];
  let writer: BatchWriter | undefined;
  try {
    await client.query('SELECT lakets.run_partition_manager()');
    server = await forkServer('api-servers.ts', ['project', bench.url]);
    const url = `ws://127.0.0.1:${server.port}/graphql`;
    writer = new BatchWriter(client, options.tickRate, (keys, commitAt) => {
      for (const w of workers) if (w.child.connected) w.child.send({ type: 'batch', keys, commitAt });
    });
    writer.start();
    await sleep(1000);

    const sizes: Record<string, unknown>[] = [];
    for (const n of options.clients) {
      const processes = Math.ceil(n / options.clientsPerProcess);
      workers = [];
      for (let i = 0; i < processes; i++) {
        const share = Math.min(options.clientsPerProcess, n - i * options.clientsPerProcess);
        workers.push(await forkServer('fanout-clients.ts', [url, String(share), SYMBOLS.join(',')]));
      }
      // Connect at the given rate (split over the processes), then wait until everyone has its current price.
      const connectStart = now();
      for (const w of workers) w.child.send({ type: 'connect', perSecond: options.connectPerSecond / processes });
      const deadline = connectStart + (n / options.connectPerSecond) * 1000 + 60_000;
      let reports: WorkerReport[] = [];
      for (;;) {
        await sleep(1000);
        reports = await Promise.all(workers.map((w) => request<WorkerReport>(w, { type: 'report' }, 'report')));
        const settled = reports.reduce((k, r) => k + r.withInitialPrice + r.failed, 0);
        if ((settled >= n && reports.reduce((k, r) => k + r.clients, 0) >= n) || now() > deadline) break;
      }
      const connectSeconds = (now() - connectStart) / 1000;
      const duplicatesWhileConnecting = reports.reduce((k, r) => k + r.duplicates, 0);
      const messagesWhileConnecting = reports.reduce((k, r) => k + r.messages, 0);

      // The measurement window.
      const cpu0 = await server.cpuMicros();
      const pg0 = postgresCpu(bench.postgresPid);
      const batches0 = writer.batches;
      for (const w of workers) w.child.send({ type: 'measure', on: true });
      await sleep(options.seconds * 1000);
      for (const w of workers) w.child.send({ type: 'measure', on: false });
      const batches = writer.batches - batches0;
      const cpu1 = await server.cpuMicros();
      const pgMicros = postgresCpuBetween(pg0, postgresCpu(bench.postgresPid));
      await sleep(500); // late commit times reach the clients
      reports = await Promise.all(workers.map((w) => request<WorkerReport>(w, { type: 'report' }, 'report')));
      const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const connected = reports.reduce((k, r) => k + r.connected, 0);
      const measured = reports.reduce((k, r) => k + r.measuredMessages, 0);
      const r1 = (v: number) => Math.round(v * 10) / 10;
      const size = {
        clients: n,
        connected,
        failedToConnect: reports.reduce((k, r) => k + r.failed, 0),
        servedCurrentPrice: reports.reduce((k, r) => k + r.withInitialPrice, 0),
        connectSeconds: r1(connectSeconds),
        messagesWhileConnecting,
        duplicatesWhileConnecting,
        duplicatesTotal: reports.reduce((k, r) => k + r.duplicates, 0),
        window: {
          seconds: options.seconds,
          batchesCommitted: batches,
          messages: measured,
          // Each batch changes every symbol: a client that keeps up gets one message per batch.
          deliveredShare: connected && batches ? Math.round((measured / (connected * batches)) * 1000) / 1000 : null,
          commitToReceiveMs: { p50: r1(percentile(latencies, 50)), p99: r1(percentile(latencies, 99)), max: r1(latencies.at(-1) ?? NaN) },
          serverCpuCores: Math.round(((cpu1 - cpu0) / (options.seconds * 1e6)) * 100) / 100,
          postgresCpuCores: pgMicros === null ? null : Math.round((pgMicros / (options.seconds * 1e6)) * 100) / 100,
        },
      };
      console.log(JSON.stringify(size));
      sizes.push(size);
      await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
        w.child.once('exit', () => resolve());
        w.child.send({ type: 'close' });
        setTimeout(() => w.child.kill('SIGKILL'), 10_000).unref();
      })));
      workers = [];
      await sleep(3000); // the server lets go of the closed subscriptions
    }
    return {
      setup: {
        tickRate: options.tickRate,
        batchMs: BATCH_MS,
        symbols: SYMBOLS.length,
        subscription: 'priceUpdated(symbols: [one symbol]) { symbol price time }, the ten symbols in turn',
        connectPerSecond: options.connectPerSecond,
        clientsPerProcess: options.clientsPerProcess,
        cpus: os.cpus().length,
        note: 'server, client processes, tick writer and Postgres share the machine; latency = client receipt minus the commit of the tick batch (same clock)',
      },
      sizes,
      target: { p99Ms: '<= 250 at 10,000 clients', duplicatesWhileConnecting: 0, everyClientServed: true },
    };
  } finally {
    writer?.stop();
    for (const w of workers) await w.stop();
    await server?.stop();
    await client.end();
    await bench.stop();
  }
}
