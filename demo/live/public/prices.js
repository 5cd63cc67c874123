// Latest price per symbol (the LVC trigger, real time, no job): one row per symbol with the price,
// its move since the page opened, a sparkline and the tick time. Updates arrive as fast as the
// server sends them; the table repaints at most four times a second.
import { History, createSparkline } from './sparkline.js';
import { el, fmtClock, fmtPct, fmtPrice } from './format.js';

export class PricesPanel {
  constructor(tbody, { onSelect, counter }) {
    this.tbody = tbody;
    this.onSelect = onSelect;
    this.counter = counter;
    this.rows = new Map();
    this.names = new Map();
    this.updates = 0;
    this.selected = null;
    this.dirty = new Set();
    this.paints = 0;
    setInterval(() => this.paint(), 250);
  }

  setNames(assets) {
    for (const a of assets) this.names.set(a.symbol, a.name);
    for (const [symbol, row] of this.rows) row.name.textContent = this.names.get(symbol) ?? '';
  }

  select(symbol) {
    this.selected = symbol;
    for (const [s, row] of this.rows) row.tr.classList.toggle('selected', s === symbol);
  }

  push(price) {
    if (!price || typeof price.price !== 'number') return;
    let row = this.rows.get(price.symbol);
    if (!row) row = this.addRow(price.symbol);
    if (row.first === null) row.first = price.price;
    if (row.latest && row.latest.price !== price.price) row.dir = price.price > row.latest.price ? 'up' : 'down';
    row.latest = price;
    row.changed++;
    this.updates++;
    this.dirty.add(price.symbol);
  }

  addRow(symbol) {
    const name = el('span', { class: 'name', text: this.names.get(symbol) ?? '' });
    const priceCell = el('td', { class: 'num price' });
    const changeCell = el('td', { class: 'num change' });
    const spark = createSparkline('spark mini');
    const timeCell = el('td', { class: 'num time' });
    const tr = el(
      'tr',
      { 'data-symbol': symbol, title: `Show ${symbol} in the chart`, onclick: () => this.onSelect?.(symbol) },
      el('td', { class: 'sym' }, el('b', { text: symbol }), name),
      priceCell,
      changeCell,
      el('td', { class: 'sparkcell' }, spark.svg),
      timeCell,
    );
    const row = { tr, name, priceCell, changeCell, timeCell, spark, history: new History(120), first: null, latest: null, dir: null, changed: 0, flashAt: 0 };
    this.rows.set(symbol, row);
    // keep the table ordered by symbol
    const after = [...this.rows.keys()].sort().find((s) => s > symbol);
    this.tbody.insertBefore(tr, after ? this.rows.get(after).tr : null);
    if (symbol === this.selected) tr.classList.add('selected');
    return row;
  }

  /** One sample a second per symbol: 120 samples = the last two minutes, on a shared time axis. */
  sample() {
    for (const row of this.rows.values()) {
      if (!row.latest) continue;
      row.history.push(row.latest.price);
      row.spark.draw(row.history);
    }
  }

  paint() {
    if (++this.paints % 4 === 0) this.sample();
    for (const symbol of this.dirty) {
      const row = this.rows.get(symbol);
      const p = row.latest;
      row.tr.dataset.price = String(p.price);
      row.priceCell.textContent = fmtPrice(p.price);
      row.priceCell.className = `num price ${row.dir ?? ''}`;
      const pct = row.first ? ((p.price - row.first) / row.first) * 100 : 0;
      row.changeCell.textContent = fmtPct(pct);
      row.changeCell.className = `num change ${pct > 0 ? 'up' : pct < 0 ? 'down' : ''}`;
      row.timeCell.textContent = fmtClock(p.time);
      // a subtle flash, at most once a second per row (busy symbols change many times a second)
      if (row.dir && performance.now() - row.flashAt > 1000) {
        row.flashAt = performance.now();
        row.tr.classList.remove('flash-up', 'flash-down');
        void row.tr.offsetWidth; // restart the flash animation
        row.tr.classList.add(`flash-${row.dir}`);
      }
      if (row.history.values.length === 0) {
        row.history.push(p.price);
      }
    }
    this.dirty.clear();
    if (this.counter) {
      this.counter.textContent = `${this.rows.size} symbols · ${this.updates.toLocaleString('en-US')} updates`;
      this.counter.dataset.updates = String(this.updates);
    }
  }
}
