// Number and time formatting shared by the panels.
const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

export function fmtInt(n) {
  return isNum(n) ? nf0.format(n) : '—';
}

export function fmtCompact(n) {
  if (!isNum(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e5) return `${(n / 1e3).toFixed(0)}k`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return nf0.format(n);
}

export function fmtBytes(n) {
  if (!isNum(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function fmtPrice(p) {
  if (!isNum(p)) return '—';
  const digits = p >= 1 ? 2 : 4;
  return p.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtPct(p) {
  if (!isNum(p)) return '—';
  return `${p >= 0 ? '+' : ''}${p.toFixed(2)}%`;
}

const pad = (n) => String(n).padStart(2, '0');

/** Local HH:MM:SS of an ISO time (or epoch ms). */
export function fmtClock(t) {
  if (t == null) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '—';
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local HH:MM, or HH:MM:SS when the seconds are not zero (watermarks sit on bucket boundaries). */
export function fmtBoundary(t) {
  if (t == null) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '—';
  return d.getSeconds() === 0 ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : fmtClock(d);
}

export function fmtDate(t) {
  if (t == null) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** "12 s", "3 min", "2 h" — for durations of age. */
export function fmtAge(ms) {
  if (!isNum(ms)) return '—';
  const s = Math.max(0, ms / 1000);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** "12 ms", "1.4 s" — for job durations. */
export function fmtMs(ms) {
  if (!isNum(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/** Postgres interval text ("00:00:10", "1 day", "01:00:00") as "10 s", "1 day", "1 h". */
export function fmtInterval(text) {
  if (typeof text !== 'string') return '—';
  const m = /^(\d+):(\d\d):(\d\d(?:\.\d+)?)$/.exec(text.trim());
  if (!m) return text;
  const s = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}
