// Live candlesticks with volume for one symbol and granularity: history from Query.candles, then
// Subscription.candleUpdated (the current bar at once, then every change, revised past bars too).
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
const pad = (n) => String(n).padStart(2, '0');

function tickMark(time, type) {
  const d = new Date(time * 1000);
  switch (type) {
    case 0:
      return String(d.getFullYear());
    case 1:
      return d.toLocaleString('en-US', { month: 'short' });
    case 2:
      return `${d.toLocaleString('en-US', { month: 'short' })} ${d.getDate()}`;
    case 4:
      return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    default:
      return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
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
    this.granularity = 'MINUTE';
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
      timeScale: { borderColor: '#232c3d', timeVisible: true, secondsVisible: false, rightOffset: RIGHT_OFFSET, barSpacing: BAR_SPACING, tickMarkFormatter: tickMark },
      localization: { timeFormatter: (t) => `${new Date(t * 1000).toLocaleDateString('en-CA')} ${tickMark(t, 3)}` },
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
    this.showOverlay('connecting…');
  }

  /** A new connection (or none): caps = { candles, candleUpdated, fields: Set } from introspection. */
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

  select(symbol, granularity) {
    if (symbol === this.symbol && granularity === this.granularity) return;
    this.symbol = symbol ?? this.symbol;
    this.granularity = granularity ?? this.granularity;
    this.chart.applyOptions({ timeScale: { timeVisible: this.granularity !== 'DAY', secondsVisible: false } });
    void this.reload();
  }

  async reload() {
    const gen = ++this.gen;
    this.disposeSub?.();
    this.disposeSub = undefined;
    this.bars = new Map();
    this.loaded = false;
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
    const vars = { symbol: this.symbol, granularity: this.granularity };
    this.showOverlay('loading…');
    this.setStatus('loading');
    if (caps.candleUpdated) {
      this.disposeSub = subscribe(
        client,
        `subscription Candle($symbol: String!, $granularity: Granularity!) { candleUpdated(symbol: $symbol, granularity: $granularity) { ${fields} } }`,
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
        `query Candles($symbol: String!, $granularity: Granularity!, $limit: Int) { candles(symbol: $symbol, granularity: $granularity, limit: $limit) { ${fields} } }`,
        { ...vars, limit: 500 },
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
    this.loaded = true;
    this.setAll();
    this.fitView();
    this.setStatus(caps.candleUpdated ? 'live' : 'static');
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
