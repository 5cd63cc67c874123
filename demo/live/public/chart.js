// Live candlesticks with volume for one symbol, bar size and time zone: the newest bars from
// Query.candles, older ones page by page (before = the first bar's bucket) as the user scrolls
// left, and Subscription.candleUpdated of the same size (the current bar at once, then every
// change: revised past bars, bars turning final).
import { createChart, CandlestickSeries, HistogramSeries, CrosshairMode, ColorType } from 'lightweight-charts';
import { request, subscribe, describeError } from './gql.js';
import { fmtCompact, fmtPrice, fmtPct, isNum } from './format.js';

const UP = '#26a69a';
// Bar widths: the usual spacing when there are more bars than fit (newest at the right edge, older
// ones a scroll away); when all of them fit, they fill the width, but never wider than the maximum
// (two day bars as two giant blocks look broken), centred then.
const BAR_SPACING = 7;
const MAX_FIT_SPACING = 48;
const RIGHT_OFFSET = 4;
const DOWN = '#ef5350';
const WANTED = ['bucket', 'time', 'open', 'high', 'low', 'close', 'volume', 'tickCount', 'final'];
// Bars per request, and how close (in bars) to the left edge of the data the view may come before
// the next older page is asked for: early enough that scrolling rarely meets the edge. Days and
// weeks come in smaller pages: the server prices a bar by the rollup rows it is built from, and a
// day in a zone off UTC is built from up to 25 hours (or 24 hours and 60 minutes), so 500 of them
// exceed one request's cost budget.
const PAGE_BARS = 500;
const CALENDAR_PAGE_BARS = 150;
const PAGE_AHEAD_BARS = 60;

/** The parts of an instant in a time zone (the axis and the crosshair label speak the chosen zone). */
const partFormats = new Map();
function zonedParts(seconds, timeZone) {
  let format = partFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    partFormats.set(timeZone, format);
  }
  return Object.fromEntries(format.formatToParts(new Date(seconds * 1000)).map((p) => [p.type, p.value]));
}

function tickMark(time, type, timeZone) {
  const p = zonedParts(time, timeZone);
  switch (type) {
    case 0:
      return p.year;
    case 1:
      return p.month;
    case 2:
      return `${p.month} ${p.day}`;
    case 4:
      return `${p.hour}:${p.minute}:${p.second}`;
    default:
      return `${p.hour}:${p.minute}`;
  }
}

function crosshairLabel(time, timeZone) {
  const p = zonedParts(time, timeZone);
  return `${p.year} ${p.month} ${p.day} ${p.hour}:${p.minute}`;
}

const timeOf = (b) => (isNum(b.time) ? b.time : Math.floor(new Date(b.bucket).getTime() / 1000));

export class CandleChart {
  constructor({ container, legend, overlay, status }) {
    this.legend = legend;
    this.overlay = overlay;
    this.status = status;
    this.bars = new Map();
    this.loaded = false;
    this.fewBars = false;
    this.gen = 0;
    this.hovering = false;
    this.symbol = null;
    this.size = { key: '1m', granularity: 'MINUTE', multiple: 1 };
    this.timeZone = 'UTC';
    this.pages = 0;
    this.loadingOlder = false;
    this.exhausted = false;
    this.chart = createChart(container, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: 'transparent' },
        textColor: '#8b95a7',
        fontSize: 11,
        attributionLogo: false, // attributed with a link in the panel's caption instead
      },
      grid: { vertLines: { color: 'rgba(148,163,184,0.06)' }, horzLines: { color: 'rgba(148,163,184,0.06)' } },
      rightPriceScale: { borderColor: '#232c3d', minimumWidth: 72 },
      timeScale: {
        borderColor: '#232c3d',
        timeVisible: true,
        secondsVisible: false,
        rightOffset: RIGHT_OFFSET,
        barSpacing: BAR_SPACING,
        tickMarkFormatter: (t, type) => tickMark(t, type, this.timeZone),
      },
      localization: { timeFormatter: (t) => crosshairLabel(t, this.timeZone) },
      crosshair: { mode: CrosshairMode.Normal },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderVisible: false,
      wickUpColor: UP,
      wickDownColor: DOWN,
      priceFormat: { type: 'price', precision: 2, minMove: 0.01 },
    });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.26 } });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: 'volume' },
      priceScaleId: 'volume',
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.chart.subscribeCrosshairMove((param) => {
      const bar = param.time !== undefined ? this.bars.get(param.time) : undefined;
      this.hovering = Boolean(bar);
      this.showLegend(bar ?? this.lastBar());
    });
    // Older bars when the view nears the left edge of what is loaded.
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (range && range.from < PAGE_AHEAD_BARS) void this.loadOlder();
    });
    this.showOverlay('connecting…');
  }

  /** A new connection (or none): caps = { candles, candleUpdated, fields: Set, sizes: boolean } from introspection (sizes: candles takes multiple and timeZone). */
  attach(client, caps) {
    this.client = client;
    this.caps = caps;
    return this.reload();
  }

  detach() {
    this.gen++;
    this.disposeSub?.();
    this.disposeSub = undefined;
    this.client = undefined;
  }

  /** symbol, size = { key, granularity, multiple }, timeZone: any of them, undefined keeps the current one. */
  select(symbol, size, timeZone) {
    const next = { symbol: symbol ?? this.symbol, size: size ?? this.size, timeZone: timeZone ?? this.timeZone };
    if (next.symbol === this.symbol && next.size.key === this.size.key && next.timeZone === this.timeZone) return;
    Object.assign(this, next);
    const intraday = this.size.granularity === 'MINUTE' || this.size.granularity === 'HOUR';
    this.chart.applyOptions({ timeScale: { timeVisible: intraday, secondsVisible: false } });
    void this.reload();
  }

  /** The size and zone arguments of every read and subscription (omitted when the server predates them). */
  sizeVars() {
    const vars = { symbol: this.symbol, granularity: this.size.granularity };
    if (this.caps?.sizes) Object.assign(vars, { multiple: this.size.multiple, timeZone: this.timeZone });
    return vars;
  }

  pageBars() {
    return this.size.granularity === 'MINUTE' || this.size.granularity === 'HOUR' ? PAGE_BARS : CALENDAR_PAGE_BARS;
  }

  sizeParams() {
    return this.caps?.sizes ? '$symbol: String!, $granularity: Granularity!, $multiple: Int, $timeZone: String' : '$symbol: String!, $granularity: Granularity!';
  }

  sizeArgs() {
    return this.caps?.sizes ? 'symbol: $symbol, granularity: $granularity, multiple: $multiple, timeZone: $timeZone' : 'symbol: $symbol, granularity: $granularity';
  }

  async reload() {
    const gen = ++this.gen;
    this.disposeSub?.();
    this.disposeSub = undefined;
    this.bars = new Map();
    this.loaded = false;
    this.pages = 0;
    this.loadingOlder = false;
    this.exhausted = false;
    this.status.dataset.size = this.size.key;
    this.status.dataset.zone = this.timeZone;
    this.status.dataset.updates = '0';
    this.status.dataset.pages = '0';
    this.status.dataset.exhausted = 'false';
    delete this.status.dataset.oldest;
    this.candles.setData([]);
    this.volume.setData([]);
    this.showLegend(undefined);
    const { client, caps } = this;
    if (!client || !caps || !this.symbol) return;
    if (!caps.candles) {
      this.setStatus('n/a');
      this.showOverlay('Candles not available yet', 'the server has no Query.candles (rollups are still being built)');
      return;
    }
    const fields = WANTED.filter((f) => caps.fields.has(f)).join(' ');
    this.fields = fields;
    const vars = this.sizeVars();
    this.showOverlay('loading…');
    this.setStatus('loading');
    if (caps.candleUpdated) {
      this.disposeSub = subscribe(
        client,
        `subscription Candle(${this.sizeParams()}) { candleUpdated(${this.sizeArgs()}) { ${fields} } }`,
        vars,
        (data, errors) => {
          if (gen !== this.gen) return;
          if (data?.candleUpdated) this.upsert(data.candleUpdated);
          else if (errors) this.setStatus('error', describeError(errors));
        },
        (err) => gen === this.gen && this.setStatus('error', describeError(err)),
      );
    }
    let res;
    try {
      res = await request(
        client,
        `query Candles(${this.sizeParams()}, $limit: Int) { candles(${this.sizeArgs()}, limit: $limit) { ${fields} } }`,
        { ...vars, limit: this.pageBars() },
      );
    } catch (err) {
      res = { errors: [{ message: describeError(err) }] };
    }
    if (gen !== this.gen) return;
    if (!res.data?.candles) {
      this.setStatus('error', describeError(res.errors));
      this.showOverlay('Could not load candles', describeError(res.errors));
      return;
    }
    // bars pushed by the subscription while the query ran are newer: keep them
    for (const b of res.data.candles) if (!this.bars.has(timeOf(b))) this.bars.set(timeOf(b), b);
    this.pages = 1;
    this.status.dataset.pages = '1';
    // Fewer bars than asked for: that is all the history there is.
    this.exhausted = res.data.candles.length < this.pageBars();
    this.status.dataset.exhausted = String(this.exhausted);
    this.loaded = true;
    this.setAll();
    this.fitView();
    this.setStatus(caps.candleUpdated ? 'live' : 'static');
  }

  /**
   * The page before the oldest bar loaded: `before` = its bucket, `limit` counts bars (gaps are
   * skipped server-side), and an empty or short page means there is no older history. The view
   * stays where it is: lightweight-charts keeps the distance to the newest bar when bars are
   * added on the left.
   */
  async loadOlder() {
    if (!this.loaded || this.loadingOlder || this.exhausted || !this.client || !this.caps?.candles) return;
    const oldest = this.oldestBar();
    if (!oldest) return;
    const gen = this.gen;
    this.loadingOlder = true;
    let res;
    try {
      res = await request(
        this.client,
        `query OlderCandles(${this.sizeParams()}, $before: DateTime!, $limit: Int) { candles(${this.sizeArgs()}, before: $before, limit: $limit) { ${this.fields} } }`,
        { ...this.sizeVars(), before: oldest.bucket ?? new Date(timeOf(oldest) * 1000).toISOString(), limit: this.pageBars() },
      );
    } catch (err) {
      res = { errors: [{ message: describeError(err) }] };
    }
    if (gen !== this.gen) return; // another symbol, size or zone meanwhile: its reload reset the state
    this.loadingOlder = false;
    if (!res.data?.candles) {
      this.setStatus('error', describeError(res.errors));
      return;
    }
    const older = res.data.candles;
    for (const b of older) if (!this.bars.has(timeOf(b))) this.bars.set(timeOf(b), b);
    this.pages++;
    this.status.dataset.pages = String(this.pages);
    this.exhausted = older.length < this.pageBars();
    this.status.dataset.exhausted = String(this.exhausted);
    if (older.length) this.setAll();
  }

  /**
   * A visible range that suits the bars: many bars at the usual width with the newest at the right
   * edge; few bars spread over the width (at most MAX_FIT_SPACING apart, centred), so that a day of
   * hour bars fills the chart instead of sitting in its right third. Re-run while the bars still fit.
   */
  fitView() {
    const n = this.bars.size;
    const timeScale = this.chart.timeScale();
    const width = timeScale.width();
    if (n === 0 || width <= 0) return;
    this.fewBars = (n + RIGHT_OFFSET) * BAR_SPACING < width;
    if (!this.fewBars) {
      timeScale.applyOptions({ barSpacing: BAR_SPACING, rightOffset: RIGHT_OFFSET });
      timeScale.scrollToRealTime();
    } else {
      const slots = Math.max(n + 2, width / MAX_FIT_SPACING);
      const margin = (slots - n) / 2;
      timeScale.setVisibleLogicalRange({ from: -margin - 0.5, to: n - 1 + margin + 0.5 });
    }
    // How many bars the view shows (read back once the chart has laid it out): for tests and curious eyes.
    requestAnimationFrame(() => {
      const range = timeScale.getVisibleLogicalRange();
      const last = this.bars.size - 1;
      const shown = range ? Math.max(0, Math.min(last, Math.floor(range.to)) - Math.max(0, Math.ceil(range.from)) + 1) : 0;
      this.status.dataset.visible = String(shown);
    });
  }

  upsert(bar) {
    const t = timeOf(bar);
    const known = this.bars.has(t);
    const last = this.lastTime();
    this.bars.set(t, bar);
    this.status.dataset.bars = String(this.bars.size);
    this.status.dataset.updates = String(Number(this.status.dataset.updates ?? 0) + 1);
    if (!this.loaded) return;
    try {
      if (last === undefined || t >= last) {
        this.candles.update(this.toCandle(bar));
        this.volume.update(this.toVolume(bar));
        if (!known && this.fewBars) this.fitView(); // a new bar while they all fit: spread them again
      } else if (known) {
        this.candles.update(this.toCandle(bar), true); // a revised past bar (late tick)
        this.volume.update(this.toVolume(bar), true);
      } else {
        this.setAll();
      }
    } catch {
      this.setAll();
    }
    this.hideOverlay();
    if (!this.hovering) this.showLegend(this.lastBar());
  }

  setAll() {
    this.status.dataset.bars = String(this.bars.size);
    const sorted = [...this.bars.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b);
    if (sorted.length) this.status.dataset.oldest = sorted[0].bucket ?? new Date(timeOf(sorted[0]) * 1000).toISOString();
    this.candles.setData(sorted.map((b) => this.toCandle(b)));
    this.volume.setData(sorted.map((b) => this.toVolume(b)));
    if (sorted.length) this.hideOverlay();
    else this.showOverlay('waiting for the first bar…');
    if (!this.hovering) this.showLegend(sorted.at(-1));
  }

  toCandle(b) {
    return { time: timeOf(b), open: b.open, high: b.high, low: b.low, close: b.close };
  }

  toVolume(b) {
    return { time: timeOf(b), value: b.volume ?? 0, color: b.close >= b.open ? 'rgba(38,166,154,0.45)' : 'rgba(239,83,80,0.45)' };
  }

  lastTime() {
    let max;
    for (const t of this.bars.keys()) if (max === undefined || t > max) max = t;
    return max;
  }

  oldestBar() {
    let min;
    for (const t of this.bars.keys()) if (min === undefined || t < min) min = t;
    return min === undefined ? undefined : this.bars.get(min);
  }

  lastBar() {
    const t = this.lastTime();
    return t === undefined ? undefined : this.bars.get(t);
  }

  showLegend(b) {
    if (!b) {
      this.legend.textContent = '';
      return;
    }
    const up = b.close >= b.open;
    const cls = up ? 'up' : 'down';
    const chg = b.open ? ((b.close - b.open) / b.open) * 100 : 0;
    this.legend.innerHTML = '';
    const item = (label, value, c = '') => {
      const s = document.createElement('span');
      s.innerHTML = `<i>${label}</i><b class="${c}"></b>`;
      s.querySelector('b').textContent = value;
      this.legend.append(s);
    };
    item('O', fmtPrice(b.open), cls);
    item('H', fmtPrice(b.high), cls);
    item('L', fmtPrice(b.low), cls);
    item('C', fmtPrice(b.close), cls);
    item('', fmtPct(chg), cls);
    item('Vol', fmtCompact(b.volume));
    if (isNum(b.tickCount)) item('Ticks', fmtCompact(b.tickCount));
    if (typeof b.final === 'boolean') item('', b.final ? 'final' : 'open', b.final ? 'muted' : 'live');
  }

  setStatus(state, detail) {
    this.status.dataset.state = state;
    this.status.textContent = state === 'error' ? 'error' : state;
    this.status.title = detail ?? '';
  }

  showOverlay(title, detail) {
    this.overlay.hidden = false;
    this.overlay.innerHTML = '';
    const t = document.createElement('div');
    t.className = 'overlay-title';
    t.textContent = title;
    this.overlay.append(t);
    if (detail) {
      const d = document.createElement('div');
      d.className = 'overlay-detail';
      d.textContent = detail;
      this.overlay.append(d);
    }
  }

  hideOverlay() {
    this.overlay.hidden = true;
  }
}
