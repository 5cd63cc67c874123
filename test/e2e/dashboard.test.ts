import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { freePort } from '../helpers/ports.ts';
import { REPO_ROOT, spawnEntry, type Spawned } from '../helpers/processes.ts';

/**
 * The live demo end to end in a real browser (Debian's chromium driven by playwright-core): the
 * whole `npm start` process tree on a temporary data directory with shortened lifecycle
 * thresholds and a day of backfilled history, the dashboard page at `/`, and every signal of the
 * dashboard (docs/ARCHITECTURE.md §10) read from the page's DOM.
 * The time until each signal first moves is printed as JSON and written next to the screenshot.
 *
 * Without a Chromium the tests are skipped, saying how to enable them; under CI (CI set, as .ci/run
 * does) a missing Chromium fails them instead, so a green CI run always includes the browser.
 */

/** LAKETS_CHROMIUM, else a Chromium at a usual place. */
function findChromium(): string | undefined {
  const explicit = process.env.LAKETS_CHROMIUM;
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`LAKETS_CHROMIUM=${explicit} does not exist`);
    return explicit;
  }
  return ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((candidate) => fs.existsSync(candidate));
}

const CHROMIUM = findChromium();
const NO_BROWSER = 'no Chromium found: `apt-get install chromium` (Debian) or LAKETS_CHROMIUM=/path/to/chromium runs this test';
const UNDER_CI = Boolean(process.env.CI) && process.env.CI !== 'false';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = path.join(REPO_ROOT, 'test', 'artifacts');
const VIEWPORT = { width: 1366, height: 768 };

// Bounded waits (not performance thresholds: the pipeline either moves or it does not).
const NOW_SIGNALS_MS = 60_000;
const LIFECYCLE_DEADLINE_MS = 150_000; // after the page opened; the drop needs ~chunk + drop-after + a retention run
const JOB_GRACE_MS = 60_000; // a scheduled job that has not run after this is not scheduled at all

interface Snapshot {
  conn: string;
  sig: Record<string, { available: string; value: string; tiered?: string }>;
  prices: Record<string, string>;
  strip: { available?: string; active?: string; tiered?: string; dropped?: string };
  jobs: string[];
  chart: { state?: string; bars?: string; updates?: string; visible?: string; size?: string; zone?: string; pages?: string; exhausted?: string; oldest?: string };
  bannerVisible: boolean;
  bannerText: string;
}

type SignalName =
  | 'ticks'
  | 'price'
  | 'activePartitions'
  | 'watermark'
  | 'rowsSynced'
  | 'tiered'
  | 'dropped'
  | 'candles';

let tmp: string;
let dataDir: string;
let userDataDir: string;
let port: number;
let pgPort: number;
let env: Record<string, string | undefined>;
let demo: Spawned | undefined;
let spawnedAt = 0;
let context: BrowserContext | undefined;
let page: Page;
let pageOpenedAt = 0;
const pageErrors: string[] = [];

let last: Snapshot | undefined;
let sampling = false;
let samplerDone: Promise<void> | undefined;
const baseline: { [k: string]: number | undefined } = {};
let firstPrices: Record<string, string> = {};
const moved: Partial<Record<SignalName, { sinceStartMs: number; sincePageMs: number; value: string | number }>> = {};
const timings: Record<string, unknown> = {};

const num = (v: string | undefined): number | undefined => (v === undefined || v === '' ? undefined : Number(v));

function mark(name: SignalName, value: string | number): void {
  if (moved[name]) return;
  const now = Date.now();
  moved[name] = { sinceStartMs: now - spawnedAt, sincePageMs: now - pageOpenedAt, value };
}

/** "moved" = grows past the first value the page showed (an absent value counts as below any). */
function grew(name: SignalName, key: string, value: number | undefined): void {
  if (value === undefined || Number.isNaN(value)) return;
  if (!(key in baseline)) baseline[key] = value;
  if (value > (baseline[key] ?? -Infinity)) mark(name, value);
}

/**
 * "moved" = climbs above the lowest value the page has shown so far. Active partitions first fall
 * when the backfilled day's chunks are tiered, then climb as the partition manager makes new ones.
 */
function climbed(name: SignalName, key: string, value: number | undefined): void {
  if (value === undefined || Number.isNaN(value)) return;
  if (!(key in baseline) || value < (baseline[key] ?? Infinity)) baseline[key] = value;
  else if (value > (baseline[key] ?? Infinity)) mark(name, value);
}

function observe(s: Snapshot): void {
  last = s;
  if (s.conn === 'live' && timings.pageLiveAfterMs === undefined) timings.pageLiveAfterMs = Date.now() - pageOpenedAt;
  grew('ticks', 'ticks', num(s.sig.ticks?.value));
  climbed('activePartitions', 'active', num(s.sig.active?.value));
  if (s.sig.watermark?.available === 'true') {
    const w = num(s.sig.watermark.value);
    if (!('watermark' in baseline)) baseline.watermark = w; // may be undefined: no refresh yet
    if (w !== undefined && (baseline.watermark === undefined || w > baseline.watermark)) mark('watermark', new Date(w).toISOString());
  }
  if (s.sig.lake?.available === 'true') {
    const r = num(s.sig.lake.value);
    if (!('lake' in baseline)) baseline.lake = r ?? 0;
    if (r !== undefined && r > (baseline.lake ?? 0)) mark('rowsSynced', r);
  }
  const tiered = Math.max(num(s.sig.dropped?.tiered) ?? 0, num(s.strip.tiered) ?? 0);
  const dropped = Math.max(num(s.sig.dropped?.value) ?? 0, num(s.strip.dropped) ?? 0);
  if (tiered > 0) mark('tiered', tiered);
  if (dropped > 0) mark('dropped', dropped);
  for (const [symbol, price] of Object.entries(s.prices)) {
    if (!(symbol in firstPrices)) firstPrices[symbol] = price;
    else if (firstPrices[symbol] !== price) mark('price', `${symbol} ${firstPrices[symbol]} → ${price}`);
  }
  if ((num(s.chart.bars) ?? 0) > 0 && (num(s.chart.updates) ?? 0) > 1) mark('candles', Number(s.chart.bars));
}

async function snapshot(): Promise<Snapshot> {
  return page.evaluate(() => {
    const sig: Record<string, { available: string; value: string; tiered?: string }> = {};
    for (const el of document.querySelectorAll<HTMLElement>('[data-signal]')) {
      sig[el.dataset.signal!] = { available: el.dataset.available ?? '', value: el.dataset.value ?? '', tiered: el.dataset.tiered };
    }
    const prices: Record<string, string> = {};
    for (const tr of document.querySelectorAll<HTMLElement>('tr[data-symbol]')) if (tr.dataset.price) prices[tr.dataset.symbol!] = tr.dataset.price;
    const strip = document.getElementById('strip')?.dataset ?? {};
    const chart = document.getElementById('chart-status')?.dataset ?? {};
    const banner = document.getElementById('banner') as HTMLElement | null;
    return {
      conn: document.getElementById('conn')?.dataset.state ?? '',
      sig,
      prices,
      strip: { available: strip.available, active: strip.active, tiered: strip.tiered, dropped: strip.dropped },
      jobs: [...document.querySelectorAll<HTMLElement>('tr[data-job]')].map((tr) => tr.dataset.job!),
      chart: {
        state: chart.state,
        bars: chart.bars,
        updates: chart.updates,
        visible: chart.visible,
        // the size the page shows as chosen, once the chart has loaded it
        size: chart.size === document.querySelector<HTMLElement>('[data-size][aria-pressed="true"]')?.dataset.size ? chart.size : undefined,
        zone: chart.zone,
        pages: chart.pages,
        exhausted: chart.exhausted,
        oldest: chart.oldest,
      },
      bannerVisible: Boolean(banner && !banner.hidden && banner.getBoundingClientRect().height > 0),
      bannerText: banner?.textContent ?? '',
    };
  });
}

function startSampler(): void {
  sampling = true;
  samplerDone = (async () => {
    while (sampling) {
      try {
        observe(await snapshot());
      } catch {
        // the page may be navigating or closing; the next sample decides
      }
      await new Promise((r) => setTimeout(r, 400));
    }
  })();
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (demo && demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}) while waiting for ${what}:\n${demo.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last page state: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function waitReady(proc: Spawned, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`the demo exited early (${proc.child.exitCode}):\n${proc.output()}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the demo was not ready after ${timeoutMs} ms:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function startDemo(): Spawned {
  return spawnEntry('demo/live/start.ts', env);
}

async function stopDemo(proc: Spawned | undefined): Promise<number | null | undefined> {
  if (!proc || proc.child.exitCode !== null) return proc?.child.exitCode;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 30_000);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}

function report(): void {
  const summary = {
    dashboardSignalsFirstMoved: moved,
    notMoved: (['ticks', 'price', 'activePartitions', 'watermark', 'rowsSynced', 'tiered', 'dropped', 'candles'] as SignalName[]).filter((s) => !moved[s]),
    ...timings,
    thresholds: { chunkInterval: env?.LAKETS_CHUNK_INTERVAL, tierAfter: env?.LAKETS_TIER_AFTER, dropAfter: env?.LAKETS_DROP_AFTER, tickRate: env?.LAKETS_TICK_RATE },
  };
  const text = JSON.stringify(summary, null, 2);
  console.log(`dashboard e2e timings:\n${text}`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, 'dashboard-timings.json'), text + '\n');
}

/** Skips the test without a browser, except under CI, where that fails it. */
function requireBrowser(ctx: TestContext): void {
  if (CHROMIUM) return;
  if (UNDER_CI) throw new Error(`the browser test must run under CI (CI=${process.env.CI}): ${NO_BROWSER}`);
  ctx.skip(NO_BROWSER);
}

beforeEach((ctx) => requireBrowser(ctx));

beforeAll(async () => {
  if (!CHROMIUM) {
    console.warn(`test/e2e/dashboard.test.ts: ${UNDER_CI ? 'FAILING under CI' : 'skipped'}: ${NO_BROWSER}`);
    return;
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-e2e-'));
  fs.chmodSync(tmp, 0o755);
  dataDir = path.join(tmp, 'data');
  userDataDir = path.join(tmp, 'chromium');
  port = await freePort();
  pgPort = await freePort();
  env = {
    DATABASE_URL: undefined,
    DATABASE_DIRECT_URL: undefined,
    DATABASE_API_URL: undefined,
    LAKETS_DATA_DIR: dataDir,
    PORT: String(port),
    LAKETS_PG_PORT: String(pgPort),
    LAKETS_PROFILE: 'demo',
    LAKETS_CHUNK_INTERVAL: '10 seconds',
    LAKETS_TIER_AFTER: '20 seconds',
    LAKETS_DROP_AFTER: '40 seconds',
    LAKETS_TICK_RATE: '500',
    // A day of history, as a new `npm start` writes it: full charts and chunks to drop at once.
    LAKETS_BACKFILL: '24 hours',
    LOG_LEVEL: 'warn',
  };
  spawnedAt = Date.now();
  demo = startDemo();
  await waitReady(demo);
  timings.readyAfterMs = Date.now() - spawnedAt;

  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: VIEWPORT,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => pageErrors.push(err.message));
  pageOpenedAt = Date.now();
  await page.goto(`http://127.0.0.1:${port}/`);
  startSampler();
}, 240_000);

afterAll(async () => {
  sampling = false;
  await samplerDone;
  if (spawnedAt) report();
  await context?.close().catch(() => undefined);
  await stopDemo(demo);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 90_000);

describe('the live dashboard in a real browser', () => {
  it('serves the page and its browser modules from node_modules', async () => {
    const base = `http://127.0.0.1:${port}`;
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    const html = await index.text();
    expect(html).toContain('/vendor/graphql-ws/client.js');
    expect(html).toContain('/vendor/lightweight-charts.js');

    const client = await fetch(`${base}/vendor/graphql-ws/client.js`);
    expect(client.status).toBe(200);
    expect(client.headers.get('content-type')).toMatch(/javascript/);
    // the client imports a content-hashed chunk next to it: it must be served too
    const chunks = [...(await client.text()).matchAll(/from '\.\/([^']+)'/g)].map((m) => m[1]!);
    expect(chunks.length).toBeGreaterThan(0);
    for (const chunk of new Set(chunks)) expect((await fetch(`${base}/vendor/graphql-ws/${chunk}`)).status).toBe(200);

    const charts = await fetch(`${base}/vendor/lightweight-charts.js`);
    expect(charts.status).toBe(200);
    expect(await charts.text()).toMatch(/export\s*\{[^}]*createChart/);
    expect((await fetch(`${base}/vendor/nothing.js`)).status).not.toBe(200);
  });

  it('shows ticks rising, prices changing and active partitions climbing', async () => {
    await until('the page to connect', () => last?.conn === 'live', 30_000);
    await until('the ticks counter to rise', () => Boolean(moved.ticks), NOW_SIGNALS_MS);
    await until('a price to change', () => Boolean(moved.price), NOW_SIGNALS_MS);
    await until('active partitions to climb', () => Boolean(moved.activePartitions), NOW_SIGNALS_MS);
    expect(Object.keys(last!.prices).length).toBeGreaterThanOrEqual(10);
    expect(last!.jobs).toContain('partition_manager');
    expect(last!.strip.available).toBe('true');
    expect(Number(last!.strip.active)).toBeGreaterThan(0);
    // panels whose data the server does not have yet say so instead of failing
    for (const [name, s] of Object.entries(last!.sig)) expect(['true', 'false'], `card ${name}`).toContain(s.available);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('charts the backfilled day: many minute bars, and a day of hour bars spread over the width', async () => {
    const chart = () => ({ g: { '1m': 'MINUTE', '1h': 'HOUR', '1D': 'DAY' }[last?.chart.size ?? ''], bars: Number(last?.chart.bars), visible: Number(last?.chart.visible) });
    // Minute bars: the 500 the chart asks for, more than fit, the newest at the right edge.
    await until('many minute bars', () => chart().g === 'MINUTE' && chart().bars >= 400, 30_000);
    await until('the minute chart to lay out', () => chart().visible > 50 && chart().visible < chart().bars, 10_000);
    // Hour bars: the whole day, all of them on screen (not a few crammed against the right edge).
    await page.click('[data-size="1h"]');
    await until('a day of hour bars, all visible', () => chart().g === 'HOUR' && chart().bars > 20 && chart().bars <= 30 && chart().visible === chart().bars, 30_000);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-hour-bars.png') });
    // Day bars: two or three, centred at a sensible width.
    await page.click('[data-size="1D"]');
    await until('the day bars, all visible', () => chart().g === 'DAY' && chart().bars >= 2 && chart().bars <= 3 && chart().visible === chart().bars, 30_000);
    await page.click('[data-size="1m"]');
    await until('the minute chart again', () => chart().g === 'MINUTE' && chart().bars >= 400 && chart().visible > 50 && chart().visible < chart().bars, 30_000);
    timings.chartBars = { minuteVisible: chart().visible };
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('shows a watermark advancing, rows synced rising and a partition going tiered then dropped', async () => {
    // Each signal is waited for until the deadline, but not when it cannot come: a field the
    // server's schema lacks, or a job that has never run, ends the wait for that signal early.
    const deadline = pageOpenedAt + LIFECYCLE_DEADLINE_MS;
    const why: Partial<Record<SignalName, string>> = {};
    const pending = (): SignalName[] => {
      const out: SignalName[] = [];
      const s = last;
      const jobsGrace = Date.now() - pageOpenedAt > JOB_GRACE_MS;
      const check = (name: SignalName, blocked: string | undefined) => {
        if (moved[name]) return;
        if (blocked) why[name] = blocked;
        else out.push(name);
      };
      check('watermark', s?.sig.watermark?.available === 'false' ? 'Pipeline.watermarks is not in the schema' : undefined);
      check('rowsSynced', s?.sig.lake?.available === 'false' ? 'Pipeline.lake is not in the schema' : undefined);
      const noTiering = jobsGrace && !s?.jobs.includes('tiering') ? 'the tiering job has never run' : undefined;
      const noRetention = jobsGrace && !s?.jobs.includes('retention') ? 'the retention job has never run' : undefined;
      check('tiered', noTiering);
      check('dropped', noRetention ?? (noTiering && !moved.tiered ? noTiering : undefined));
      check('candles', s?.chart.state === 'n/a' ? 'Query.candles / Subscription.candleUpdated are not in the schema' : undefined);
      return out;
    };
    while (pending().length > 0 && Date.now() < deadline) {
      if (demo && demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}):\n${demo.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const name of pending()) why[name] = `did not move within ${LIFECYCLE_DEADLINE_MS / 1000} s of opening the page`;
    timings.lifecycleWaitEndedAfterMs = Date.now() - pageOpenedAt;
    timings.lifecycleMissing = why;

    expect.soft(moved.watermark, `a rollup watermark advances (rollup_refresh): ${why.watermark}`).toBeDefined();
    expect.soft(moved.rowsSynced, `rows synced to the lake rise (cdf_sync): ${why.rowsSynced}`).toBeDefined();
    expect.soft(moved.tiered, `a partition goes tiered (tiering): ${why.tiered}`).toBeDefined();
    expect.soft(moved.dropped, `a partition is dropped (retention): ${why.dropped}`).toBeDefined();
    if (moved.tiered && moved.dropped) {
      expect.soft(moved.tiered.sinceStartMs, 'tiered before dropped').toBeLessThanOrEqual(moved.dropped.sinceStartMs);
    }
    expect.soft(moved.candles, `the candle chart updates live (candles + candleUpdated): ${why.candles}`).toBeDefined();
    expect(pageErrors).toEqual([]);
  }, LIFECYCLE_DEADLINE_MS + 60_000);

  it('switches bar sizes and time zones, every size live', async () => {
    const chart = () => ({ ...last?.chart, bars: Number(last?.chart.bars), updates: Number(last?.chart.updates) });
    // The backfilled day and the minutes since: all of them on one page (fewer than the 500 asked
    // for, so the chart knows there is nothing older), and live: the open bar changes as ticks stream.
    const sizes: Array<[size: string, minBars: number, maxBars: number]> = [
      ['5m', 280, 330],
      ['15m', 93, 112],
      ['4h', 6, 9],
    ];
    for (const [size, minBars, maxBars] of sizes) {
      await page.click(`[data-size="${size}"]`);
      await until(`the ${size} bars`, () => chart().size === size && chart().bars >= minBars && chart().bars <= maxBars && chart().exhausted === 'true', 30_000);
      await until(`the ${size} bars updated live`, () => chart().size === size && chart().updates >= 2, 30_000);
    }
    // Days and weeks in New York start at its midnight (04:00 or 05:00 UTC).
    await page.selectOption('#zone', 'America/New_York');
    await page.click('[data-size="1D"]');
    await until('New York day bars', () => chart().size === '1D' && chart().zone === 'America/New_York' && chart().bars >= 2 && chart().bars <= 3 && chart().oldest !== undefined, 30_000);
    expect([4, 5]).toContain(new Date(chart().oldest!).getUTCHours());
    await until('the New York day bar updated live', () => chart().size === '1D' && chart().updates >= 2, 30_000);
    await page.click('[data-size="1W"]');
    await until('a New York week bar', () => chart().size === '1W' && chart().bars >= 1 && chart().bars <= 2 && chart().oldest !== undefined, 30_000);
    expect([4, 5]).toContain(new Date(chart().oldest!).getUTCHours());
    expect(new Date(chart().oldest!).getUTCDay()).toBe(1); // Monday
    await page.selectOption('#zone', 'UTC');
    await until('UTC week bars', () => chart().zone === 'UTC' && chart().bars >= 1 && chart().oldest !== undefined && new Date(chart().oldest!).getUTCHours() === 0, 30_000);
    expect(pageErrors).toEqual([]);
  }, 180_000);

  it('loads older minute bars when the chart is dragged to the left edge, page by page with before', async () => {
    const chart = () => ({ ...last?.chart, bars: Number(last?.chart.bars), pages: Number(last?.chart.pages) });
    await page.selectOption('#zone', 'UTC');
    await page.click('[data-size="1m"]');
    await until('the newest 500 minute bars', () => chart().size === '1m' && chart().zone === 'UTC' && chart().pages === 1 && chart().bars >= 500, 30_000);
    expect(chart().exhausted).toBe('false');
    const firstOldest = Date.parse(chart().oldest!);
    // Drag the chart to the right (towards older bars) as a user would, until the next page came.
    const box = (await page.locator('#chart').boundingBox())!;
    const y = box.y + box.height / 2;
    for (let drag = 0; drag < 12 && chart().pages < 2; drag++) {
      await page.mouse.move(box.x + 60, y);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width - 120, y, { steps: 12 });
      await page.mouse.up();
      await new Promise((r) => setTimeout(r, 300));
    }
    await until('a second page of older bars', () => chart().pages >= 2 && chart().bars >= 900, 20_000);
    // The older page ends right before the first one began: no gap, no overlap (a bar per minute).
    const oldest = Date.parse(chart().oldest!);
    expect(oldest).toBeLessThan(firstOldest);
    expect((firstOldest - oldest) / 60_000).toBeGreaterThanOrEqual(400);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('shows "reconnecting…" when the server goes away and recovers when it is back', async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });
    expect(last?.conn).toBe('live');

    const stoppedAt = Date.now();
    const stopping = demo;
    demo = undefined;
    expect(await stopDemo(stopping)).toBe(0);
    await until('the reconnecting indicator', () => last?.conn === 'reconnecting' && last.bannerVisible, 20_000);
    timings.reconnectingShownAfterStopMs = Date.now() - stoppedAt;
    expect(await page.locator('#conn').textContent()).toContain('reconnecting');
    expect(last!.bannerText).toMatch(/reconnecting/i);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-reconnecting.png') });

    // the same server comes back on the same port: the page recovers by itself, no reload
    const ticksBefore = last!.sig.ticks?.value;
    const restartedAt = Date.now();
    demo = startDemo();
    await waitReady(demo);
    await until('the page to be live again', () => last?.conn === 'live' && !last.bannerVisible, 60_000);
    timings.liveAgainAfterRestartMs = Date.now() - restartedAt;
    await until('fresh figures after the reconnection', () => last?.sig.ticks?.value !== ticksBefore, 30_000);
    expect(pageErrors).toEqual([]);
  }, 180_000);
});
