// LakeTS Live dashboard: wires the panels to the public GraphQL API over graphql-ws.
// At every (re)connection the schema is introspected first and the selections are built from the
// fields it serves (a server whose API was narrowed, e.g. by a proxy, still gets a working page
// whose missing panels say so), and a field the server fails to produce is dropped from the
// pipeline subscription rather than emptying every panel.
import { connect, request, subscribe, describeError, storeToken, storedToken } from './gql.js';
import { SignalCards } from './signals.js';
import { PricesPanel } from './prices.js';
import { CandleChart } from './chart.js';
import { LifecycleStrip } from './lifecycle.js';
import { JobsPanel } from './jobs.js';
import { fmtAge, fmtClock, fmtInterval } from './format.js';

const $ = (id) => document.getElementById(id);

const INTROSPECT = `query Capabilities {
  __schema { queryType { fields { name args { name } } } subscriptionType { fields { name } } }
  pipeline: __type(name: "Pipeline") { fields { name args { name } } }
  partitionCounts: __type(name: "PartitionCounts") { fields { name } }
  jobStatus: __type(name: "JobStatus") { fields { name } }
  partition: __type(name: "Partition") { fields { name } }
  watermark: __type(name: "Watermark") { fields { name } }
  lake: __type(name: "LakeStatus") { fields { name } }
  candle: __type(name: "Candle") { fields { name } }
  price: __type(name: "Price") { fields { name } }
  asset: __type(name: "Asset") { fields { name } }
}`;

// [Pipeline field, introspected type alias, wanted sub-fields, arguments]
const PIPELINE_FIELDS = [
  ['at'],
  ['ticksLastMinute'],
  ['defaultPartitionRows'],
  ['chunkInterval'],
  ['invalidationsPending'],
  ['partitions', 'partitionCounts', ['active', 'tiered', 'dropped', 'residentRows', 'residentBytes', 'droppedRows']],
  ['jobs', 'jobStatus', ['job', 'lastStatus', 'lastStartedAt', 'lastFinishedAt', 'lastDurationMs', 'lastRowsAffected', 'lastError', 'failuresLastHour']],
  ['recentPartitions', 'partition', ['name', 'status', 'rangeStart', 'rangeEnd', 'rowCount', 'tieredAt', 'droppedAt'], { limit: 40 }],
  ['watermarks', 'watermark', ['rollup', 'granularity', 'watermark', 'pendingInvalidations', 'lastRefreshAt', 'lastRefreshMs']],
  ['lake', 'lake', ['state', 'committedLsn', 'deltaVersion', 'rowsSynced', 'slotLagBytes', 'updatedAt']],
];
const names = (t) => new Set((t?.fields ?? []).map((f) => f.name));

function pipelineSelection(caps, fields, skip) {
  const parts = [];
  for (const [field, typeAlias, sub, args] of fields) {
    if (!caps.pipeline.has(field) || skip.has(field)) continue;
    if (!typeAlias) {
      parts.push(field);
      continue;
    }
    const have = sub.filter((f) => caps.types[typeAlias].has(f));
    if (have.length === 0) continue;
    const argText = args && caps.pipelineArgs[field]?.has('limit') ? `(limit: ${args.limit})` : '';
    parts.push(`${field}${argText} { ${have.join(' ')} }`);
  }
  return parts.join(' ');
}

// ---- panels -------------------------------------------------------------------------------

const cards = new SignalCards($('cards'));
const strip = new LifecycleStrip({ strip: $('strip'), legend: $('strip-legend'), axis: $('strip-axis') });
const jobs = new JobsPanel($('jobs-body'));
const chart = new CandleChart({ container: $('chart'), legend: $('chart-legend'), overlay: $('chart-overlay'), status: $('chart-status') });
const symbolSelect = $('symbol');
const zoneSelect = $('zone');
const sizeButtons = [...document.querySelectorAll('[data-size]')];
const sizeOf = (button) => ({ key: button.dataset.size, granularity: button.dataset.granularity, multiple: Number(button.dataset.multiple) });
const sizeByKey = (key) => sizeOf(sizeButtons.find((b) => b.dataset.size === key) ?? sizeButtons[0]);

// Zones offered: UTC, the exchanges' and a half-hour one (days there cannot be built from hours),
// and the browser's own.
const ZONES = ['UTC', 'America/New_York', 'America/Chicago', 'Europe/London', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Tokyo', 'Australia/Sydney'];
const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
for (const zone of ZONES.includes(browserZone) || !browserZone ? ZONES : [...ZONES, browserZone]) {
  zoneSelect.append(new Option(zone === browserZone ? `${zone} (local)` : zone, zone));
}

const prefs = {
  symbol: new URLSearchParams(location.search).get('symbol') ?? localStorage.getItem('lakets.symbol'),
  size: sizeByKey(localStorage.getItem('lakets.size') ?? '1m'),
  timeZone: ZONES.includes(localStorage.getItem('lakets.timeZone')) || localStorage.getItem('lakets.timeZone') === browserZone ? localStorage.getItem('lakets.timeZone') : 'UTC',
};
zoneSelect.value = prefs.timeZone;

function selectSymbol(symbol) {
  if (!symbol) return;
  prefs.symbol = symbol;
  localStorage.setItem('lakets.symbol', symbol);
  if (![...symbolSelect.options].some((o) => o.value === symbol)) symbolSelect.append(new Option(symbol, symbol));
  symbolSelect.value = symbol;
  prices.select(symbol);
  chart.select(symbol, prefs.size, prefs.timeZone);
}

function selectSize(key) {
  prefs.size = sizeByKey(key);
  localStorage.setItem('lakets.size', prefs.size.key);
  for (const b of sizeButtons) b.setAttribute('aria-pressed', String(b.dataset.size === prefs.size.key));
  chart.select(prefs.symbol, prefs.size, prefs.timeZone);
}

function selectZone(zone) {
  prefs.timeZone = zone;
  localStorage.setItem('lakets.timeZone', zone);
  chart.select(prefs.symbol, prefs.size, zone);
}

const prices = new PricesPanel($('prices-body'), { onSelect: selectSymbol, counter: $('prices-count') });
symbolSelect.addEventListener('change', () => selectSymbol(symbolSelect.value));
zoneSelect.addEventListener('change', () => selectZone(zoneSelect.value));
for (const b of sizeButtons) b.addEventListener('click', () => selectSize(b.dataset.size));
for (const b of sizeButtons) b.setAttribute('aria-pressed', String(b.dataset.size === prefs.size.key));
chart.size = prefs.size;
chart.timeZone = prefs.timeZone;

// ---- connection state ---------------------------------------------------------------------

const conn = $('conn');
const connLabel = $('conn-label');
const banner = $('banner');
let connState = 'connecting';
let connSince = Date.now();
let lastPipelineAt = 0;
let lastPipeline = null;

// ---- the API token (only when the server asks for one) -------------------------------------

const tokenForm = $('token-form');
tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  storeToken($('token-input').value.trim());
  $('token-input').value = '';
  $('token-error').textContent = 'connecting…';
  // the client retries by itself and reads the stored token at its next connection
});

function showTokenForm(info) {
  tokenForm.hidden = false;
  $('token-error').textContent = info?.hadToken ? 'the server refused this token' : '';
  if (document.activeElement !== $('token-input')) $('token-input').focus();
}

function setConnState(state, info) {
  if (state === 'unauthorized') showTokenForm(info);
  else if (state === 'live') tokenForm.hidden = true;
  if (state !== connState) connSince = Date.now();
  connState = state;
  conn.dataset.state = state;
  document.body.classList.toggle('offline', state === 'reconnecting');
  banner.hidden = state !== 'reconnecting';
  if (state === 'reconnecting' && info?.attempts) conn.dataset.attempts = String(info.attempts);
  renderConn();
}

function renderConn() {
  const age = fmtAge(Date.now() - connSince);
  if (connState === 'live') {
    const stale = lastPipelineAt && Date.now() - lastPipelineAt > 5000;
    connLabel.textContent = stale ? `live · no update for ${fmtAge(Date.now() - lastPipelineAt)}` : 'live';
    conn.classList.toggle('stale', Boolean(stale));
  } else if (connState === 'unauthorized') {
    connLabel.textContent = storedToken() ? 'token refused' : 'token required';
  } else if (connState === 'reconnecting') {
    connLabel.textContent = `reconnecting… ${age}`;
    $('banner-text').textContent = `Server unreachable for ${age} — reconnecting… (figures frozen at ${lastPipeline ? fmtClock(lastPipeline.at) : 'the last update'})`;
  } else {
    connLabel.textContent = 'connecting…';
  }
  if (lastPipeline) $('updated').textContent = `updated ${fmtClock(lastPipeline.at)}`;
}
setInterval(renderConn, 1000);

function notice(text) {
  const n = $('notice');
  n.hidden = !text;
  n.textContent = text ?? '';
  n.title = text ?? '';
}

// ---- a session = one connection's subscriptions ------------------------------------------

let session = null;
let sessionSeq = 0;

function stopSession() {
  if (!session) return;
  for (const d of session.disposers) d();
  session = null;
  chart.detach();
}

async function startSession(client) {
  stopSession();
  const s = { id: ++sessionSeq, disposers: [] };
  session = s;
  const alive = () => session === s;
  let capsRes;
  try {
    capsRes = await request(client, INTROSPECT);
  } catch (err) {
    if (alive()) notice(`introspection failed: ${describeError(err)}`);
    return;
  }
  if (!alive()) return;
  if (!capsRes.data) {
    notice(`introspection failed: ${describeError(capsRes.errors)}`);
    return;
  }
  const d = capsRes.data;
  const caps = {
    query: names(d.__schema.queryType),
    candleArgs: new Set((d.__schema.queryType?.fields ?? []).find((f) => f.name === 'candles')?.args?.map((a) => a.name) ?? []),
    subscription: names(d.__schema.subscriptionType),
    pipeline: names(d.pipeline),
    pipelineArgs: Object.fromEntries((d.pipeline?.fields ?? []).map((f) => [f.name, new Set((f.args ?? []).map((a) => a.name))])),
    types: Object.fromEntries(['partitionCounts', 'jobStatus', 'partition', 'watermark', 'lake', 'candle', 'price', 'asset'].map((k) => [k, names(d[k])])),
  };
  window.__laketsCaps = caps; // for curious people in the devtools
  notice(null);

  // availability of every panel
  const pipelineSub = caps.subscription.has('pipelineUpdated');
  cards.setSchema(pipelineSub ? caps.pipeline : new Set());
  strip.setAvailable(pipelineSub && caps.pipeline.has('recentPartitions'));
  $('jobs-panel').dataset.available = String(pipelineSub && caps.pipeline.has('jobs'));

  // asset names and the symbol list
  if (caps.query.has('assets')) {
    request(client, '{ assets { symbol name } }').then((res) => {
      if (!alive() || !res.data?.assets) return;
      prices.setNames(res.data.assets);
      const current = symbolSelect.value;
      symbolSelect.replaceChildren(...res.data.assets.map((a) => new Option(`${a.symbol} · ${a.name}`, a.symbol)));
      const want = prefs.symbol && res.data.assets.some((a) => a.symbol === prefs.symbol) ? prefs.symbol : current || res.data.assets[0]?.symbol;
      if (want) selectSymbol(want);
    }, () => undefined);
  } else if (!prefs.symbol) {
    selectSymbol('AAPL');
  }

  // latest prices: the LVC over priceUpdated (or, failing that, the snapshot inside the pipeline)
  const usePriceSub = caps.subscription.has('priceUpdated');
  $('prices-panel').dataset.available = String(usePriceSub || caps.pipeline.has('latestPrices'));
  if (usePriceSub) {
    const fields = ['symbol', 'price', 'volume', 'time'].filter((f) => caps.types.price.has(f)).join(' ');
    s.disposers.push(
      subscribe(client, `subscription Prices { priceUpdated { ${fields} } }`, {}, (data, errors) => {
        if (data?.priceUpdated) prices.push(data.priceUpdated);
        else if (errors) notice(`prices: ${describeError(errors)}`);
      }),
    );
  }

  // the pipeline signals
  if (pipelineSub) {
    const skip = new Set();
    const reasons = {};
    const fields = usePriceSub ? PIPELINE_FIELDS : [...PIPELINE_FIELDS, ['latestPrices', 'price', ['symbol', 'price', 'volume', 'time']]];
    const run = () => {
      const selection = pipelineSelection(caps, fields, skip);
      let dispose = () => undefined;
      dispose = subscribe(
        client,
        `subscription Pipeline { pipelineUpdated { ${selection} } }`,
        {},
        (data, errors) => {
          if (!alive()) return;
          const p = data?.pipelineUpdated;
          if (p) {
            onPipeline(p);
            if (errors) notice(`pipeline (partial): ${describeError(errors)}`);
            return;
          }
          // no data at all: a field the server failed to produce (named by the error paths) is
          // dropped, and the rest subscribed again without it
          const drop = (errors ?? []).map((e) => e.path?.[1]).filter((f) => typeof f === 'string' && !skip.has(f));
          notice(`pipeline: ${describeError(errors)}${drop.length ? ` — retrying without ${drop.join(', ')}` : ''}`);
          if (drop.length) {
            for (const f of drop) {
              skip.add(f);
              reasons[f] = `the server failed to produce Pipeline.${f}`;
            }
            cards.setSchema(new Set([...caps.pipeline].filter((f) => !skip.has(f))), reasons);
            dispose();
            run();
          }
        },
        (err) => alive() && notice(`pipeline: ${describeError(err)}`),
      );
      s.disposers.push(() => dispose());
    };
    run();
  }

  // the candle chart
  // (a server without multiple/timeZone serves the 1m, 1h and 1D UTC bars only)
  const sizes = caps.candleArgs.has('multiple') && caps.candleArgs.has('timeZone');
  for (const b of sizeButtons) b.disabled = !sizes && (b.dataset.multiple !== '1' || b.dataset.granularity === 'WEEK');
  zoneSelect.disabled = !sizes;
  await chart.attach(client, {
    candles: caps.query.has('candles') && caps.types.candle.size > 0,
    candleUpdated: caps.subscription.has('candleUpdated'),
    fields: caps.types.candle,
    sizes,
  });
  if (prefs.symbol) chart.select(prefs.symbol, prefs.size, prefs.timeZone);
}

function onPipeline(p) {
  lastPipelineAt = Date.now();
  lastPipeline = p;
  cards.update(p);
  if (p.recentPartitions) strip.update(p.recentPartitions, p.at);
  if (p.jobs) jobs.update(p.jobs, p.at);
  if (Array.isArray(p.latestPrices)) for (const x of p.latestPrices) prices.push(x);
  if (p.chunkInterval) $('chunk').textContent = `chunks of ${fmtInterval(p.chunkInterval)}`;
  renderConn();
}

// ---- go -----------------------------------------------------------------------------------

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
const connection = connect({
  url: wsUrl,
  onState: (state, info) => {
    setConnState(state, info);
    if (state === 'live') setTimeout(() => void startSession(connection.client()), 0);
    else stopSession();
  },
});
