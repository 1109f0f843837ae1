// Jobs: search by queue, state, kind, tag and payload text, newest first, one keyset page at a time (fast on any store size).
import { h, clear, STATES, stateBadge, toQuery, when } from '../dom.js';
import { get } from '../api.js';
import { errorPanel, reportLive } from '../ui.js';

const PAGE = 50;
// Cursors of the pages before the current one, per filter, so "Newer" can step back (the API pages one way).
const trail = new Map();

export function jobs(root, ctx) {
  const p = ctx.params;
  const filterKey = JSON.stringify([p.queue, p.state, p.kind, p.tag, p.text]);
  const cursors = trail.get(filterKey) ?? [];
  trail.clear();
  trail.set(filterKey, cursors);
  if (!p.cursor) cursors.length = 0;

  // The filtered queue is an option from the start: a filter changed before the queue list arrives must keep it.
  const queueSelect = h('select', { name: 'queue', 'aria-label': 'Queue' }, h('option', { value: '' }, 'All queues'),
    p.queue ? h('option', { value: p.queue, selected: true }, p.queue) : null);
  const stateSelect = h('select', { name: 'state', 'aria-label': 'State' }, h('option', { value: '' }, 'Any state'),
    STATES.map(st => h('option', { value: st, selected: p.state === st }, st)));
  const kind = h('input', { name: 'kind', type: 'search', placeholder: 'Kind, e.g. email.send', 'aria-label': 'Kind', value: p.kind || '' });
  const tag = h('input', { name: 'tag', type: 'search', placeholder: 'Tag', 'aria-label': 'Tag', value: p.tag || '' });
  const text = h('input', { name: 'text', type: 'search', placeholder: 'Text in payload', 'aria-label': 'Text in payload', value: p.text || '' });
  const go = () => {
    location.hash = `#/jobs${toQuery({ queue: queueSelect.value, state: stateSelect.value, kind: kind.value.trim(), tag: tag.value.trim(), text: text.value.trim() })}`;
  };
  const form = h('form.filters', { role: 'search', onsubmit: e => { e.preventDefault(); go(); } },
    queueSelect, stateSelect, kind, tag, text,
    h('button.btn.primary', { type: 'submit' }, 'Filter'),
    (p.queue || p.state || p.kind || p.tag || p.text) && h('a.btn.ghost', { href: '#/jobs' }, 'Clear'));
  queueSelect.addEventListener('change', go);
  stateSelect.addEventListener('change', go);

  const results = h('section.panel.flush', { 'aria-live': 'polite' }, h('p.loading', null, 'Loading jobs…'));
  root.append(h('div.page-head', null, h('h1', null, 'Jobs'),
    h('button.btn.ghost.small', { type: 'button', onclick: () => load() }, 'Refresh')), h('section.panel', null, form), results);

  get('/v1/queues').then(list => {
    const names = list.map(q => q.name).sort();
    if (p.queue && !names.includes(p.queue)) names.unshift(p.queue);
    queueSelect.replaceChildren(queueSelect.options[0], ...names.map(name => h('option', { value: name, selected: name === p.queue }, name)));
  }).catch(() => { /* the list still works without the queue names */ });

  let aborter = null;
  async function load() {
    aborter?.abort();
    aborter = new AbortController();
    const query = toQuery({ queue: p.queue, state: p.state, kind: p.kind, tag: p.tag, text: p.text, cursor: p.cursor, limit: PAGE });
    try {
      const page = await get(`/v1/jobs${query}`, { signal: aborter.signal });
      reportLive();
      paint(page);
    } catch (e) {
      if (e.name !== 'AbortError') clear(results).append(errorPanel(e));
    }
  }

  function paint(page) {
    clear(results);
    if (!page.jobs.length) {
      results.append(h('div.empty', { dataset: { empty: 'jobs' } }, h('p', null, p.cursor ? 'No older jobs.' : 'No jobs match these filters.')));
    } else {
      results.append(h('table.table.responsive.job-table', null,
        h('thead', null, h('tr', null, ['ID', 'Kind', 'Queue', 'State', 'Attempt', 'Created', 'Tags'].map(t => h(t === 'Attempt' ? 'th.num' : 'th', null, t)))),
        h('tbody', null, page.jobs.map(jobRow))));
    }
    const newer = cursors.length ? cursors.at(-1) : '';
    const pager = h('nav.pager', { 'aria-label': 'Pages' },
      h('span.muted', null, page.jobs.length ? `#${page.jobs[0].id} – #${page.jobs.at(-1).id}` : ''),
      h('div.pager-buttons', null,
        p.cursor && h('a.btn.small', {
          href: `#/jobs${toQuery({ ...filters(p), cursor: newer || undefined })}`,
          onclick: () => cursors.pop(),
        }, '← Newer'),
        page.next_cursor && h('a.btn.small', {
          href: `#/jobs${toQuery({ ...filters(p), cursor: page.next_cursor })}`,
          onclick: () => cursors.push(p.cursor || ''),
          rel: 'next',
        }, 'Older →')));
    results.append(pager);
  }

  load();
  return () => aborter?.abort();
}

const filters = p => ({ queue: p.queue, state: p.state, kind: p.kind, tag: p.tag, text: p.text });

function jobRow(job) {
  const href = `#/jobs/${job.id}`;
  return h('tr', { dataset: { job: job.id } },
    h('td.id', { dataset: { label: 'ID' } }, h('a', { href }, `#${job.id}`)),
    h('td.kind', { dataset: { label: 'Kind' } }, h('a', { href }, job.kind)),
    h('td', { dataset: { label: 'Queue' } }, job.queue),
    h('td', { dataset: { label: 'State' } }, stateBadge(job.state)),
    h('td.num', { dataset: { label: 'Attempt' } }, `${job.attempt}/${job.max_attempts}`),
    h('td', { dataset: { label: 'Created' } }, when(job.created_at, true)),
    h('td.tags', { dataset: { label: 'Tags' } }, job.tags.length ? job.tags.map(t => h('span.tag', null, t)) : h('span.muted', null, '—')));
}
