// The signal cards of docs/ARCHITECTURE.md §10 (all but the latest prices, which have their own panel).
// Each card: value, a sparkline of the last 120 samples (~2 minutes at one pipeline update a
// second), two detail lines, and the component that drives it.
import { History, createSparkline } from './sparkline.js';
import { el, fmtAge, fmtBytes, fmtClock, fmtCompact, fmtBoundary, fmtDate, fmtInt, fmtInterval, fmtMs, isNum } from './format.js';

const GRAN_ORDER = { MINUTE: 0, HOUR: 1, DAY: 2 };
const GRAN_SHORT = { MINUTE: '1m', HOUR: '1h', DAY: '1d' };

const sortedWatermarks = (p) => [...(p.watermarks ?? [])].sort((a, b) => (GRAN_ORDER[a.granularity] ?? 9) - (GRAN_ORDER[b.granularity] ?? 9));
const ms = (iso) => (iso ? new Date(iso).getTime() : null);

const CARDS = [
  {
    key: 'ticks',
    title: 'Ticks written / min',
    driver: 'stream_ticks',
    how: 'COPY batches of synthetic ticks, continuous',
    needs: ['ticksLastMinute'],
    value: (p) => p.ticksLastMinute,
    show: (v) => fmtCompact(v),
    lines: (p) => [`≈ ${fmtInt(p.ticksLastMinute / 60)} ticks/s`, `sampled ${fmtClock(p.at)}`],
    color: 'cyan',
  },
  {
    key: 'active',
    title: 'Active partitions',
    driver: 'partition_manager + router',
    how: 'premakes chunks ahead; the router routes each tick',
    needs: ['partitions'],
    value: (p) => p.partitions?.active,
    show: (v) => fmtInt(v),
    lines: (p) => [
      `${fmtCompact(p.partitions?.residentRows)} rows · ${fmtBytes(p.partitions?.residentBytes)}`,
      `chunks of ${fmtInterval(p.chunkInterval)} · default ${fmtInt(p.defaultPartitionRows)} rows`,
    ],
    color: 'green',
  },
  {
    key: 'invalidations',
    title: 'Invalidation log',
    driver: 'write triggers fill · rollup_refresh drains',
    how: 'pending (symbol, bucket) invalidations',
    needs: ['invalidationsPending'],
    value: (p) => p.invalidationsPending,
    show: (v) => fmtCompact(v),
    zeroBased: true,
    lines: (p) => {
      const w = sortedWatermarks(p);
      return [
        w.length ? w.map((x) => `${GRAN_SHORT[x.granularity] ?? x.rollup} ${fmtCompact(x.pendingInvalidations)}`).join(' · ') : 'pending entries',
        'drops toward zero each refresh',
      ];
    },
    color: 'amber',
  },
  {
    key: 'watermark',
    title: 'Rollup watermarks',
    driver: 'rollup_refresh → refresh_rollup_cascade()',
    how: 'the newest bucket each rollup has materialised',
    needs: ['watermarks'],
    // data-value: the furthest watermark (epoch ms), so "advances" means "grows"
    value: (p) => {
      const t = (p.watermarks ?? []).map((w) => ms(w.watermark)).filter(isNum);
      return t.length ? Math.max(...t) : null;
    },
    // the sparkline: how far the finest watermark trails the sample time (a saw-tooth)
    trend: (p) => {
      const w = sortedWatermarks(p).find((x) => x.watermark);
      return w ? Math.max(0, (ms(p.at) - ms(w.watermark)) / 1000) : null;
    },
    show: (_v, p) => {
      const w = sortedWatermarks(p).find((x) => x.watermark);
      return w ? fmtBoundary(w.watermark) : 'none yet';
    },
    lines: (p) => {
      const w = sortedWatermarks(p);
      const first = w.find((x) => x.watermark);
      const others = w.filter((x) => x !== first).map((x) => `${GRAN_SHORT[x.granularity] ?? x.rollup} ${x.granularity === 'DAY' ? (x.watermark ? fmtDate(x.watermark).slice(5) : '—') : fmtBoundary(x.watermark)}`);
      const refresh = w.map((x) => x.lastRefreshMs).filter(isNum);
      return [
        first ? `${GRAN_SHORT[first.granularity] ?? first.rollup} lag ${fmtAge(ms(p.at) - ms(first.watermark))}${others.length ? ' · ' + others.join(' · ') : ''}` : `${w.length} rollups, nothing refreshed yet`,
        refresh.length ? `last refresh ${fmtMs(Math.max(...refresh))}` : 'waiting for the first refresh',
      ];
    },
    color: 'violet',
  },
  {
    key: 'lake',
    title: 'Rows synced to lake',
    driver: 'change-feed sync (cdf_sync)',
    how: 'logical replication → Delta Lake',
    needs: ['lake'],
    value: (p) => p.lake?.rowsSynced ?? null,
    show: (v, p) => (p.lake ? fmtCompact(v) : 'no sync yet'),
    lines: (p) => {
      const l = p.lake;
      if (!l) return ['the sync has not reported yet', ''];
      return [
        `${l.state ?? '—'}${isNum(l.deltaVersion) ? ` · Delta v${l.deltaVersion}` : ''}`,
        `slot lag ${fmtBytes(l.slotLagBytes)}${l.updatedAt ? ` · ${fmtClock(l.updatedAt)}` : ''}`,
      ];
    },
    color: 'blue',
  },
  {
    key: 'dropped',
    title: 'Partitions dropped',
    driver: 'tiering + retention',
    how: 'after the durability gate (count + checksum)',
    needs: ['partitions'],
    value: (p) => p.partitions?.dropped,
    show: (v) => fmtInt(v),
    zeroBased: true,
    data: (p) => ({ tiered: p.partitions?.tiered, active: p.partitions?.active }),
    lines: (p) => [
      `tiered ${fmtInt(p.partitions?.tiered)} · active ${fmtInt(p.partitions?.active)}`,
      `${fmtCompact(p.partitions?.droppedRows)} rows now only in the lake`,
    ],
    color: 'rose',
  },
];

export class SignalCards {
  constructor(container) {
    this.cards = CARDS.map((spec) => {
      const value = el('div', { class: 'value', text: '—' });
      const spark = createSparkline();
      const l1 = el('div', { class: 'line' });
      const l2 = el('div', { class: 'line' });
      const root = el(
        'article',
        { class: `card accent-${spec.color}`, 'data-signal': spec.key, 'data-available': 'unknown', title: `${spec.driver}: ${spec.how}` },
        el('header', {}, el('h2', { text: spec.title })),
        el('div', { class: 'value-row' }, value, spark.svg),
        l1,
        l2,
        el('footer', { class: 'driver' }, el('span', { class: 'driver-label', text: 'by ' }), el('b', { text: spec.driver })),
      );
      container.append(root);
      return { spec, root, value, spark, l1, l2, history: new History(120) };
    });
  }

  /** @param {Set<string>} fields the Pipeline fields the server has @param {Record<string, string>} [reasons] */
  setSchema(fields, reasons = {}) {
    for (const c of this.cards) {
      const ok = c.spec.needs.every((f) => fields.has(f));
      c.available = ok;
      c.root.dataset.available = String(ok);
      if (!ok) {
        c.value.textContent = '—';
        c.l1.textContent = 'not available yet';
        const missing = c.spec.needs.filter((f) => !fields.has(f));
        c.l2.textContent = missing.map((f) => reasons[f]).find(Boolean) ?? `needs Pipeline.${missing.join(', ')}`;
        c.l2.title = c.l2.textContent;
        c.root.dataset.value = '';
        c.history.clear();
        c.spark.draw(c.history);
      }
    }
  }

  update(p) {
    for (const c of this.cards) {
      if (!c.available) continue;
      try {
        const v = c.spec.value(p);
        const trend = c.spec.trend ? c.spec.trend(p) : v;
        c.history.push(trend);
        c.root.dataset.value = isNum(v) ? String(v) : '';
        c.value.textContent = c.spec.show(v, p);
        if (c.spec.data) for (const [k, x] of Object.entries(c.spec.data(p))) c.root.dataset[k] = x == null ? '' : String(x);
        const [a, b] = c.spec.lines(p);
        c.l1.textContent = a ?? '';
        c.l2.textContent = b ?? '';
        c.spark.draw(c.history, { zeroBased: c.spec.zeroBased });
      } catch (err) {
        // a malformed payload must never take the page down
        c.l1.textContent = 'unreadable value';
        c.l2.textContent = String(err?.message ?? err);
      }
    }
  }
}
