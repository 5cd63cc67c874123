import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { useTestContext } from '../helpers/context.ts';
import { REPO_ROOT } from '../helpers/processes.ts';
import type { RunningApi } from '../../src/main.ts';
import { vendorRoutes } from '../../demo/live/vendor-routes.ts';

/**
 * GraphiQL and the dashboard in a real browser (Debian's chromium) with every request to anything
 * but 127.0.0.1 blocked and recorded: GraphiQL loads from the server alone (no CDN), runs its
 * default query (latest prices and candles) and shows data; with authentication on, it sends the
 * token from its Headers tab, and the dashboard asks for the token once and goes live with it.
 */

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO_ROOT, 'test', 'artifacts');
const TOKEN = 'e2e-token-0123456789abcdef';

const ctx = useTestContext('graphiql_e2e');
let open: RunningApi;
let guarded: RunningApi;
let browser: Browser;
let tmp: string;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium, or set CHROMIUM_PATH`);
  tmp = ctx.tempDir('graphiql');
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.db.query(
    `INSERT INTO stock_ticks (time, symbol, price, volume)
     SELECT now() - make_interval(secs => g * 20), s, 100 + g, 1 FROM generate_series(1, 30) g, unnest(ARRAY['AAPL', 'MSFT']) s`,
  );
  const page = { staticDir: path.join(REPO_ROOT, 'demo', 'live', 'public'), routes: vendorRoutes() };
  open = await ctx.startApi(page);
  guarded = await ctx.startApi({ ...page, security: { apiTokens: [TOKEN], allowAnonymous: false } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
}, 60_000);

/** A fresh browser context whose requests may only go to 127.0.0.1; anything else is aborted and listed. */
async function offlineContext(): Promise<{ context: BrowserContext; page: Page; blocked: string[]; errors: string[] }> {
  // Tall: the editors render only the lines in view, and the whole response should be readable.
  const context = await browser.newContext({ viewport: { width: 1280, height: 4000 } });
  const blocked: string[] = [];
  const errors: string[] = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'blob:' || url.protocol === 'data:' || url.hostname === '127.0.0.1') return route.continue();
    blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(err.message));
  return { context, page, blocked, errors };
}

async function runInGraphiQL(page: Page): Promise<string> {
  await page.locator('.graphiql-execute-button').first().waitFor({ timeout: 60_000 });
  // (the editors render spaces as no-break spaces: text is compared with whitespace collapsed)
  await page.waitForFunction(() => document.body.innerText.replace(/\s+/g, ' ').includes('query Overview'), undefined, { timeout: 60_000 }).catch(async (err: Error) => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-failed.png') });
    throw new Error(`GraphiQL did not show its default query: ${err.message}`);
  });
  await page.locator('.graphiql-execute-button').first().click();
  await page.waitForFunction(
    () => {
      const text = (document.querySelector('.graphiql-response') as HTMLElement | null)?.innerText ?? '';
      return text.includes('"latestPrices"') || text.includes('"errors"');
    },
    undefined,
    { timeout: 60_000 },
  );
  return responseText(page);
}

async function responseText(page: Page): Promise<string> {
  return (await page.locator('.graphiql-response').innerText()).replace(/\s+/g, ' ');
}

describe('GraphiQL offline', () => {
  it('loads nothing from outside the server and runs its default query with data', async () => {
    const { context, page, blocked, errors } = await offlineContext();
    try {
      const res = await page.goto(`${open.url}/graphql`);
      expect(res?.status()).toBe(200);
      const response = await runInGraphiQL(page);
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql.png') });
      expect(response).toContain('"latestPrices"');
      expect(response).toMatch(/"symbol": "AAPL"/);
      expect(response).toMatch(/"candles": \[ \{ "time": \d+, "open": [\d.]+, "high": [\d.]+, "low": [\d.]+, "close": [\d.]+/);
      expect(response).not.toContain('"errors"');
      expect(blocked).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);

  it('sends the token typed in its Headers tab when authentication is on', async () => {
    const { context, page, blocked } = await offlineContext();
    try {
      await page.goto(`${guarded.url}/graphql`);
      await page.locator('.graphiql-execute-button').first().waitFor({ timeout: 60_000 });
      // Without a token the query is refused...
      const refused = await runInGraphiQL(page);
      expect(refused).toContain('UNAUTHENTICATED');
      // ...and with it in the Headers tab it runs.
      await page.getByRole('button', { name: /headers/i }).first().click();
      await page.locator('.graphiql-editor-tool .monaco-editor:visible .view-lines').last().click();
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.press('Delete');
      await page.keyboard.type(`{"Authorization": "Bearer ${TOKEN}"`); // the editor closes the brace itself
      await page.locator('.graphiql-execute-button').first().click();
      await page.waitForFunction(() => ((document.querySelector('.graphiql-response') as HTMLElement | null)?.innerText ?? '').includes('"latestPrices"'), undefined, {
        timeout: 60_000,
      });
      const response = await responseText(page);
      expect(response).not.toContain('UNAUTHENTICATED');
      expect(response).toMatch(/"symbol": "AAPL"/);
      expect(blocked).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);
});

describe('the dashboard with authentication on', () => {
  it('asks for the token once, keeps it, and goes live', async () => {
    const { context, page, blocked, errors } = await offlineContext();
    try {
      await page.goto(`${guarded.url}/`);
      await page.locator('#token-form').waitFor({ state: 'visible', timeout: 30_000 });
      expect(await page.locator('#conn-label').textContent()).toMatch(/token required/);
      await page.fill('#token-input', TOKEN);
      await page.locator('#token-form button[type="submit"]').click();
      await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30_000 });
      await page.waitForFunction(() => document.querySelectorAll('#prices-body tr').length >= 2, undefined, { timeout: 30_000 });
      expect(await page.locator('#token-form').isHidden()).toBe(true);
      // kept: a reload goes live without asking
      await page.reload();
      await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30_000 });
      expect(await page.locator('#token-form').isHidden()).toBe(true);
      expect(await page.evaluate(() => localStorage.getItem('lakets.token'))).toBe(TOKEN);
      expect(blocked).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);
});
