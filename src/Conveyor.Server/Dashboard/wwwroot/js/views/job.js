// One job: what it is, what it carried and returned, how it failed, its history, and the actions allowed on it.
import { h, clear, fmt, stateBadge, when } from '../dom.js';
import { api, get, post } from '../api.js';
import { poll, act, errorPanel } from '../ui.js';

const UNFINISHED = new Set(['scheduled', 'available', 'running']);

export function jobDetail(root, ctx) {
  const id = ctx.id;
  const body = h('div.job', null, h('p.loading', null, 'Loading job…'));
  root.append(h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('a', { href: '#/jobs' }, 'Jobs'), ' / ', h('span', null, `#${id}`)), body);
  let painted = '';
  let stopped = false;

  async function tick() {
    try {
      const [job, events] = await Promise.all([get(`/v1/jobs/${id}`), get(`/v1/jobs/${id}/events`)]);
      const key = JSON.stringify([job, events]);
      if (key !== painted) { painted = key; paint(job, events); }
      if (!UNFINISHED.has(job.state)) stopPolling();
    } catch (e) {
      if (e.status === 404) { stopPolling(); clear(body).append(errorPanel(e)); return; }
      throw e;
    }
  }
  const stopTimer = poll(tick, 2000);
  const stopPolling = () => { if (!stopped) { stopped = true; stopTimer(); } };
  const refresh = async () => { painted = ''; await tick().catch(() => {}); };

  function paint(job, events) {
    clear(body).append(
      h('div.page-head.job-head', null,
        h('div', null,
          h('h1', null, `Job #${job.id} `, stateBadge(job.state)),
          h('p.subtitle', null, h('span.kind', null, job.kind), ' in ', h('a', { href: `#/jobs?queue=${encodeURIComponent(job.queue)}` }, job.queue))),
        h('div.job-actions', null, actions(job, ctx, refresh))),
      h('div.job-grid', null,
        h('div.job-main', null,
          jsonPanel('Payload', job.payload),
          job.result !== null && jsonPanel('Result', job.result),
          job.progress !== null && jsonPanel('Progress', job.progress),
          errorsPanel(job.errors)),
        h('div.job-side', null, facts(job), timeline(events))));
  }

  return () => stopPolling();
}

function actions(job, ctx, refresh) {
  if (!ctx.canAdmin) return [];
  const out = [];
  if (job.state === 'dead' || job.state === 'cancelled') {
    const retry = h('button.btn.primary', {
      type: 'button',
      onclick: () => act(retry,
        { title: `Retry job #${job.id}?`, text: `It goes back to available in ${job.queue} with its attempts reset.`, action: 'Retry', danger: false },
        () => post(`/v1/jobs/${job.id}/retry`), j => `Job #${j.id} is ${j.state} again`).then(refresh),
    }, 'Retry');
    out.push(retry);
  }
  if (UNFINISHED.has(job.state)) {
    const cancel = h('button.btn.danger', {
      type: 'button',
      onclick: () => act(cancel,
        { title: `Cancel job #${job.id}?`, text: job.state === 'running' ? 'The worker holding it will be refused when it reports back.' : 'It will not run.', action: 'Cancel job' },
        () => post(`/v1/jobs/${job.id}/cancel`), j => `Job #${j.id} is ${j.state}`).then(refresh),
    }, 'Cancel');
    out.push(cancel);
  }
  // Only when the server's API has it (it is read from the OpenAPI document).
  if (ctx.caps?.deleteJob && !UNFINISHED.has(job.state)) {
    const del = h('button.btn.danger.ghost', {
      type: 'button',
      onclick: () => act(del,
        { title: `Delete job #${job.id}?`, text: 'The job and its history are removed for good.', action: 'Delete' },
        () => api('DELETE', `/v1/jobs/${job.id}`), () => `Job #${job.id} deleted`).then(() => { location.hash = '#/jobs'; }),
    }, 'Delete');
    out.push(del);
  }
  return out;
}

function jsonPanel(title, value) {
  const text = value === null || value === undefined ? 'null' : fmt.json(value);
  const copy = h('button.btn.ghost.small', {
    type: 'button',
    onclick: () => navigator.clipboard?.writeText(text).then(() => { copy.textContent = 'Copied'; setTimeout(() => { copy.textContent = 'Copy'; }, 1500); }),
  }, 'Copy');
  return h('section.panel', { dataset: { section: title.toLowerCase() } },
    h('div.panel-head', null, h('h2', null, title), copy),
    h('pre.code', null, text));
}

function errorsPanel(errors) {
  if (!errors.length) return null;
  return h('section.panel', { dataset: { section: 'errors' } },
    h('div.panel-head', null, h('h2', null, `Errors (${errors.length})`)),
    h('ol.errors', null, [...errors].reverse().map(e => h('li', null,
      h('div.error-head', null, h('span.badge.state-dead', null, `attempt ${e.attempt}`), when(e.at, true)),
      h('p.error-message', null, e.message),
      e.stack && h('details', null, h('summary', null, 'Stack trace'), h('pre.code.stack', null, e.stack))))));
}

function facts(job) {
  const row = (label, value) => [h('dt', null, label), h('dd', null, value ?? h('span.muted', null, '—'))];
  return h('section.panel', { dataset: { section: 'facts' } },
    h('h2', null, 'Details'),
    h('dl.facts', null,
      row('Queue', job.queue),
      row('Kind', job.kind),
      row('Priority', String(job.priority)),
      row('Attempt', `${job.attempt} of ${job.max_attempts}`),
      row('Run at', when(job.run_at)),
      row('Created', when(job.created_at)),
      row('Started', job.started_at && when(job.started_at)),
      row('Finished', job.finished_at && when(job.finished_at)),
      job.lease && row('Lease', `${job.lease.owner || 'a worker'} until ${fmt.time(job.lease.expires_at)}`),
      row('Tags', job.tags.length ? job.tags.map(t => h('a.tag', { href: `#/jobs?tag=${encodeURIComponent(t)}` }, t)) : null),
      job.idempotency_key && row('Idempotency key', h('code', null, job.idempotency_key)),
      job.partition_key && row('Partition', h('code', null, job.partition_key)),
      job.trace_parent && row('Trace', h('code.wrap', null, job.trace_parent))));
}

function timeline(events) {
  return h('section.panel', { dataset: { section: 'events' } },
    h('h2', null, 'History'),
    events.length
      ? h('ol.timeline', null, events.map(e => h('li', { class: `t-${e.type}`, dataset: { event: e.type } },
        h(`span.dot.state-${e.state}`),
        h('div.t-body', null,
          h('div.t-head', null, h('b', null, e.type.replaceAll('_', ' ')), e.attempt ? h('span.muted', null, ` · attempt ${e.attempt}`) : null, ' → ', stateBadge(e.state)),
          h('div.t-time', null, when(e.at)),
          e.message && h('p.t-message', null, e.message)))))
      : h('p.muted', null, 'No history recorded.'));
}
