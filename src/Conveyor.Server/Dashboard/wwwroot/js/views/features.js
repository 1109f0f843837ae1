// Submissions and schedules: shown when the server's API has them, otherwise a clear empty state.
import { h, clear, fmt } from '../dom.js';
import { get } from '../api.js';
import { errorPanel } from '../ui.js';

function unavailable(root, title, text) {
  root.append(h('section.panel.empty', { dataset: { empty: 'unavailable' } },
    h('h1', null, title), h('p', null, text), h('a', { href: '#/' }, 'Back to the overview')));
}

export function submissions(root, ctx) {
  if (!ctx.caps?.submissions) {
    unavailable(root, 'Submissions', 'Submissions are not available on this server: its API has no /v1/submissions routes yet.');
    return null;
  }
  const out = h('div');
  const input = h('input', { type: 'text', inputmode: 'numeric', placeholder: 'Submission id', 'aria-label': 'Submission id', value: ctx.params.id || '' });
  const form = h('form.filters', {
    async onsubmit(event) {
      event.preventDefault();
      clear(out);
      try {
        const sub = await get(`/v1/submissions/${encodeURIComponent(input.value.trim())}`);
        out.append(submissionCard(sub));
      } catch (e) {
        out.append(errorPanel(e));
      }
    },
  }, input, h('button.btn.primary', { type: 'submit' }, 'Show'));
  root.append(h('div.page-head', null, h('h1', null, 'Submissions')), h('section.panel', null, form), out);
  return null;
}

function submissionCard(sub) {
  const total = sub.total ?? sub.chunks ?? sub.chunk_count;
  const done = sub.completed ?? sub.done ?? sub.completed_chunks;
  const bar = typeof total === 'number' && typeof done === 'number' && total > 0
    ? h('div.progress', { role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': done }, progressFill(done / total))
    : null;
  return h('section.panel', null,
    h('h2', null, `Submission ${sub.id ?? ''}`),
    bar, bar && h('p.muted', null, `${fmt.num(done)} of ${fmt.num(total)} chunks`),
    h('pre.code', null, JSON.stringify(sub, null, 2)));
}

function progressFill(ratio) {
  const fill = h('div.progress-fill');
  fill.style.width = `${Math.round(Math.min(1, Math.max(0, ratio)) * 100)}%`;
  return fill;
}

export function schedules(root, ctx) {
  if (!ctx.caps?.schedules) {
    unavailable(root, 'Schedules', 'Schedules are not available on this server: its API has no /v1/schedules route yet.');
    return null;
  }
  const body = h('div', null, h('p.loading', null, 'Loading…'));
  root.append(h('div.page-head', null, h('h1', null, 'Schedules')), body);
  get('/v1/schedules').then(data => {
    const list = Array.isArray(data) ? data : data?.schedules ?? [];
    clear(body);
    if (!list.length) return body.append(h('section.panel.empty', null, h('p', null, 'No schedules yet.')));
    const columns = [...new Set(list.flatMap(item => Object.keys(item).filter(k => typeof item[k] !== 'object' || item[k] === null)))];
    body.append(h('section.panel.flush', null, h('table.table.responsive', null,
      h('thead', null, h('tr', null, columns.map(c => h('th', null, c.replaceAll('_', ' '))))),
      h('tbody', null, list.map(item => h('tr', null, columns.map(c => h('td', { dataset: { label: c.replaceAll('_', ' ') } },
        /_at$/.test(c) && item[c] ? `${fmt.time(item[c])} (${fmt.ago(item[c])})` : String(item[c] ?? '—')))))))));
  }, e => clear(body).append(errorPanel(e)));
  return null;
}
