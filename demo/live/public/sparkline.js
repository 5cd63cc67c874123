// Tiny inline-SVG sparklines over a bounded in-memory history.
//
// The line always spans the whole box: sample i of n sits at x = i / (n - 1). (Placing the samples
// on a fixed grid of `capacity` slots, newest at the right edge, drew the first few seconds as a
// vertical stroke: two samples 1/119 of the width apart, scaled to the full height.)
const SVG = 'http://www.w3.org/2000/svg';

export class History {
  constructor(capacity = 120) {
    this.capacity = capacity;
    this.values = [];
  }
  push(v) {
    this.values.push(typeof v === 'number' && Number.isFinite(v) ? v : null);
    if (this.values.length > this.capacity) this.values.splice(0, this.values.length - this.capacity);
  }
  get last() {
    return this.values.at(-1) ?? null;
  }
  clear() {
    this.values = [];
  }
}

/** An <svg> that stretches to its box; draw() redraws it from a History. */
export function createSparkline(className = 'spark') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', className);
  svg.setAttribute('viewBox', '0 0 100 32');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('aria-hidden', 'true');
  const area = document.createElementNS(SVG, 'path');
  area.setAttribute('class', 'spark-area');
  const line = document.createElementNS(SVG, 'path');
  line.setAttribute('class', 'spark-line');
  line.setAttribute('vector-effect', 'non-scaling-stroke');
  svg.append(area, line);
  return {
    svg,
    /** @param {History} history @param {{ zeroBased?: boolean }} [opts] */
    draw(history, opts = {}) {
      const vals = history.values;
      const present = vals.filter((v) => v !== null);
      if (present.length < 2) {
        line.setAttribute('d', '');
        area.setAttribute('d', '');
        return;
      }
      let min = Math.min(...present);
      let max = Math.max(...present);
      if (opts.zeroBased) min = Math.min(0, min);
      if (max === min) {
        // a flat line: at the bottom when it is zero on a zero-based scale, else in the middle
        if (opts.zeroBased && max === 0) max = 1;
        else {
          max += 1;
          min -= 1;
        }
      }
      const last = vals.length - 1; // ≥ 1: at least two samples are present
      const pts = [];
      vals.forEach((v, i) => {
        if (v === null) return;
        const x = (i / last) * 100;
        const y = 30 - ((v - min) / (max - min)) * 28;
        pts.push([x, y]);
      });
      const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(2)},${y.toFixed(2)}`).join('');
      line.setAttribute('d', d);
      area.setAttribute('d', `${d}L${pts.at(-1)[0].toFixed(2)},32L${pts[0][0].toFixed(2)},32Z`);
    },
  };
}
