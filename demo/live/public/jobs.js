// The jobs panel: last status, duration and age of every scheduled job (lakets.job_runs).
import { el, fmtAge, fmtCompact, fmtMs } from './format.js';

const ORDER = ['stream_ticks', 'partition_manager', 'rollup_refresh', 'cdf_sync', 'tiering', 'retention', 'lake_compact', 'lake_vacuum'];

export class JobsPanel {
  constructor(tbody) {
    this.tbody = tbody;
  }

  update(jobs, at) {
    if (!Array.isArray(jobs)) return;
    const now = at ? new Date(at).getTime() : Date.now();
    const rank = (j) => {
      const i = ORDER.indexOf(j.job);
      return i < 0 ? ORDER.length : i;
    };
    const rows = [...jobs].sort((a, b) => rank(a) - rank(b) || a.job.localeCompare(b.job));
    this.tbody.replaceChildren(
      ...rows.map((j) => {
        const status = j.lastStatus ?? '—';
        const finished = j.lastFinishedAt ?? j.lastStartedAt;
        return el(
          'tr',
          { 'data-job': j.job, title: j.lastError ? `last error: ${j.lastError}` : '' },
          el('td', { class: 'job', text: j.job }),
          el(
            'td',
            {},
            el('span', { class: `pill ${status}`, text: status }),
            j.failuresLastHour ? el('span', { class: 'fails', title: 'failures in the last hour', text: ` ${j.failuresLastHour}✕` }) : null,
          ),
          el('td', { class: 'num', text: fmtMs(j.lastDurationMs) }),
          el('td', { class: 'num', text: finished ? fmtAge(now - new Date(finished).getTime()) : '—' }),
          el('td', { class: 'num', text: j.lastRowsAffected == null ? '—' : fmtCompact(j.lastRowsAffected) }),
        );
      }),
    );
    if (rows.length === 0) this.tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'no job has run yet' })));
  }
}
