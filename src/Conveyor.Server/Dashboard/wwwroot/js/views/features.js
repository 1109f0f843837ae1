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
  const list = h('div');
  const input = h('input', { type: 'text', inputmode: 'numeric', placeholder: 'Submission id', 'aria-label': 'Submission id', value: ctx.params.id || '' });
  const show = async id => {
    clear(out);
    try {
      out.append(submissionCard(await get(`/v1/submissions/${encodeURIComponent(id)}`)));
    } catch (e) {
      out.append(errorPanel(e));
    }
  };
  const form = h('form.filters', {
    onsubmit(event) {
      event.preventDefault();
      show(input.value.trim());
    },
  }, input, h('button.btn.primary', { type: 'submit' }, 'Show'));
  root.append(h('div.page-head', null, h('h1', null, 'Submissions')), h('section.panel', null, form), out, list);
  if (ctx.params.id) show(ctx.params.id);
  if (ctx.caps?.submissionList) {
    list.append(h('p.loading', null, 'Loading…'));
    get('/v1/submissions?limit=50').then(data => {
      const items = data?.submissions ?? [];
      clear(list);
      if (!items.length) return list.append(h('section.panel.empty', null, h('p', null, 'No submissions yet.')));
      list.append(h('section.panel.flush', null, h('table.table.responsive', null,
        h('thead', null, h('tr', null, ['id', 'queue', 'state', 'progress', 'created'].map(c => h('th', null, c)))),
        h('tbody', null, items.map(sub => h('tr', { dataset: { id: sub.id } },
          h('td', { dataset: { label: 'id' } }, h('a', { href: `#/submissions?id=${sub.id}` }, String(sub.id))),
          h('td', { dataset: { label: 'queue' } }, sub.queue),
          h('td', { dataset: { label: 'state' } }, sub.state.replaceAll('_', ' ')),
          h('td', { dataset: { label: 'progress' } }, `${fmt.num(sub.chunks_done)} of ${fmt.num(sub.chunks_total)} chunks`),
          h('td', { dataset: { label: 'created' } }, `${fmt.time(sub.created_at)} (${fmt.ago(sub.created_at)})`)))))));
    }, e => clear(list).append(errorPanel(e)));
  }
  return null;
}

function submissionCard(sub) {
  const total = sub.chunks_total;
  const done = sub.chunks_done;
  const bar = typeof total === 'number' && typeof done === 'number' && total > 0
    ? h('div.progress', { role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': done }, progressFill(done / total))
    : null;
  return h('section.panel', null,
    h('h2', null, `Submission ${sub.id ?? ''} (${(sub.state ?? '').replaceAll('_', ' ')})`),
    bar, h('p.muted', null, `${fmt.num(done)} of ${fmt.num(total)} chunks, ${fmt.num(sub.operations_done)} operations`),
    sub.failed_chunk ? h('p', null, `Chunk ${sub.failed_chunk.index} failed: ${sub.failed_chunk.error}`) : null,
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
