// The chunk lifecycle strip (active → tiered → dropped): one cell per recent chunk, oldest on the
// left, from Pipeline.recentPartitions.
import { el, fmtClock, fmtCompact, fmtDate, fmtInt } from './format.js';

// The strip can span days (a backfilled history has hour chunks): an end that is not on the other
// end's day carries its date.
const edge = (t, other) => (fmtDate(t) === fmtDate(other) ? fmtClock(t) : `${fmtDate(t).slice(5)} ${fmtClock(t).slice(0, 5)}`);

export class LifecycleStrip {
  constructor({ strip, legend, axis }) {
    this.strip = strip;
    this.legend = legend;
    this.axis = axis;
    this.cells = new Map();
  }

  setAvailable(ok) {
    this.strip.dataset.available = String(ok);
    if (!ok) {
      this.strip.replaceChildren(el('div', { class: 'na', text: 'not available yet (needs Pipeline.recentPartitions)' }));
      this.cells.clear();
    } else if (this.strip.querySelector('.na')) {
      this.strip.replaceChildren();
    }
  }

  update(partitions, now) {
    if (!Array.isArray(partitions)) return;
    const list = [...partitions].sort((a, b) => new Date(a.rangeStart) - new Date(b.rangeStart) || (a.name < b.name ? -1 : 1));
    const nowMs = now ? new Date(now).getTime() : Date.now();
    const keep = new Set();
    const counts = { ACTIVE: 0, TIERED: 0, DROPPED: 0 };
    let prev = null;
    for (const p of list) {
      const key = `${p.name}@${p.rangeStart}`;
      keep.add(key);
      counts[p.status] = (counts[p.status] ?? 0) + 1;
      let cell = this.cells.get(key);
      if (!cell) {
        cell = el('div', { class: 'cell' }, el('span', { class: 'fill' }));
        this.cells.set(key, cell);
      }
      const status = String(p.status).toLowerCase();
      const current = new Date(p.rangeStart).getTime() <= nowMs && nowMs < new Date(p.rangeEnd).getTime();
      if (cell.dataset.status && cell.dataset.status !== status) {
        cell.classList.remove('changed');
        void cell.offsetWidth;
        cell.classList.add('changed');
      }
      cell.dataset.status = status;
      cell.classList.toggle('current', current);
      cell.title = [
        p.name,
        `${fmtClock(p.rangeStart)} – ${fmtClock(p.rangeEnd)}`,
        `${status}${current ? ' (receiving ticks)' : ''}`,
        `${fmtInt(p.rowCount)} rows`,
        p.tieredAt ? `tiered ${fmtClock(p.tieredAt)}` : null,
        p.droppedAt ? `dropped ${fmtClock(p.droppedAt)}` : null,
      ]
        .filter(Boolean)
        .join('\n');
      // the fill height shows the chunk's rows relative to the fullest chunk on the strip
      cell.dataset.rows = String(p.rowCount ?? 0);
      // keep DOM order = time order
      const want = prev ? prev.nextSibling : this.strip.firstChild;
      if (want !== cell) this.strip.insertBefore(cell, want);
      prev = cell;
    }
    const maxRows = Math.max(1, ...list.map((p) => p.rowCount ?? 0));
    for (const [key, cell] of this.cells) {
      if (!keep.has(key)) {
        cell.remove();
        this.cells.delete(key);
      } else {
        cell.firstChild.style.height = `${Math.max(8, (Number(cell.dataset.rows) / maxRows) * 100)}%`;
      }
    }
    this.strip.dataset.active = String(counts.ACTIVE);
    this.strip.dataset.tiered = String(counts.TIERED);
    this.strip.dataset.dropped = String(counts.DROPPED);
    this.legend.replaceChildren(
      el('span', { class: 'key active' }, el('i'), `active ${counts.ACTIVE}`),
      el('span', { class: 'arrow', text: '→' }),
      el('span', { class: 'key tiered' }, el('i'), `tiered ${counts.TIERED}`),
      el('span', { class: 'arrow', text: '→' }),
      el('span', { class: 'key dropped' }, el('i'), `dropped ${counts.DROPPED}`),
    );
    const summary = `${list.length} newest chunks · ${fmtCompact(list.reduce((s, p) => s + (p.rowCount ?? 0), 0))} rows`;
    if (list.length) {
      const first = list[0].rangeStart;
      const last = list.at(-1).rangeEnd;
      this.axis.replaceChildren(el('span', { text: edge(first, last) }), el('span', { text: summary }), el('span', { text: edge(last, first) }));
    }
  }
}
