// Overview: totals, live throughput and depth charts over the last 15 minutes, and every queue with its counts.
import { h, clear, fmt, STATES, toQuery } from '../dom.js';
import { get, post } from '../api.js';
import { poll, act } from '../ui.js';
import { lineChart } from '../chart.js';

const WINDOW_MS = 15 * 60 * 1000;

export function overview(root, ctx) {
  const cards = h('div.cards');
  const throughput = lineChart({
    label: 'Jobs per second over the last 15 minutes',
    windowMs: WINDOW_MS,
    unit: 'jobs/s, 5 s average',
    series: [
      { key: 'completed', label: 'Completed', cls: 's-completed', area: true },
      { key: 'enqueued', label: 'Enqueued', cls: 's-enqueued' },
      { key: 'failed', label: 'Failed', cls: 's-failed' },
    ],
  });
  const depth = lineChart({
    label: 'Jobs waiting, running and dead over the last 15 minutes',
    windowMs: WINDOW_MS,
    unit: 'jobs',
    bucketMs: 0,
    series: [
      { key: 'waiting', label: 'Waiting', cls: 's-available', area: true },
      { key: 'running', label: 'Running', cls: 's-running' },
      { key: 'dead', label: 'Dead', cls: 's-dead' },
    ],
  });
  const rates = h('span.panel-note');
  const queues = h('div.queues', null, h('p.loading', null, 'Loading queues…'));

  root.append(
    h('div.page-head', null, h('h1', null, 'Overview')),
    cards,
    h('div.charts', null,
      h('section.panel', null, h('div.panel-head', null, h('h2', null, 'Throughput'), rates), throughput.el),
      h('section.panel', null, h('div.panel-head', null, h('h2', null, 'Depth'), h('span.panel-note', null, 'last 15 minutes')), depth.el)),
    h('section.panel.flush', null, h('div.panel-head', null, h('h2', null, 'Queues')), queues));

  let samples = [];
  let lastAt = null;
  let historyMissing = !ctx.caps?.history;

  async function tick() {
    const [list, history] = await Promise.all([
      get('/v1/queues'),
      historyMissing ? null : get(`/v1/stats/history${toQuery({ since: lastAt })}`).catch(e => {
        if (e.status === 404) { historyMissing = true; return null; }
        throw e;
      }),
    ]);
    if (history) {
      const added = history.samples.map(p => ({ ...p, waiting: p.available + p.scheduled }));
      // The server restarted (or its clock moved back): start over instead of stitching two histories together.
      if (added.length && lastAt && added[0].at_ms < lastAt) samples = [];
      samples = samples.concat(added).filter(p => p.at_ms >= Date.now() - WINDOW_MS - 60_000);
      if (samples.length) lastAt = samples.at(-1).at_ms;
      const end = samples.length ? Math.max(samples.at(-1).at_ms, Date.now() - 1500) : Date.now();
      throughput.update(samples, end);
      depth.update(samples, end);
      paintRates(rates, samples);
    }
    paintCards(cards, list, samples);
    paintQueues(queues, list, ctx, tick);
  }

  const stop = poll(tick, 2000);
  return () => { stop(); throughput.destroy(); depth.destroy(); };
}

function recentRate(samples, key, seconds = 10) {
  const recent = samples.slice(-seconds);
  return recent.length ? recent.reduce((sum, p) => sum + (p[key] || 0), 0) / recent.length : 0;
}

function paintRates(el, samples) {
  clear(el).append(
    h('span', null, h('span.swatch.s-enqueued'), `${fmt.rate(recentRate(samples, 'enqueued'))} in`),
    h('span', null, h('span.swatch.s-completed'), `${fmt.rate(recentRate(samples, 'completed'))} done`),
    h('span', null, h('span.swatch.s-failed'), `${fmt.rate(recentRate(samples, 'failed'))} failed`),
    h('span.muted', null, '/s, last 10 s'));
}

function paintCards(el, list, samples) {
  const total = Object.fromEntries(STATES.map(st => [st, list.reduce((sum, q) => sum + (q.counts[st] || 0), 0)]));
  const card = (state, label, extra) => h(`a.card.state-${state}`, { href: `#/jobs${toQuery({ state })}`, dataset: { total: state } },
    h('span.card-label', null, label), h('span.card-value', null, fmt.compact(total[state])), extra && h('span.card-extra', null, extra));
  clear(el).append(
    card('available', 'Available'),
    card('scheduled', 'Scheduled'),
    card('running', 'Running'),
    card('dead', 'Dead', total.dead ? 'need attention' : null),
    card('completed', 'Completed'),
    h('div.card.rate', null, h('span.card-label', null, 'Completed / s'), h('span.card-value', null, fmt.rate(recentRate(samples, 'completed'))),
      h('span.card-extra', null, `${list.length} ${list.length === 1 ? 'queue' : 'queues'}`)));
}

function paintQueues(el, list, ctx, refresh) {
  // Repaint only when something changed, so a button under the pointer is not replaced every two seconds.
  const key = JSON.stringify(list);
  if (el.dataset.painted === key) return;
  el.dataset.painted = key;
  clear(el);
  if (!list.length) {
    el.append(h('div.empty', null, h('p', null, 'No queues yet. A queue appears with its first job:'),
      h('pre.code', null, 'curl -X POST $SERVER/v1/queues/emails/jobs -d \'{"kind":"email.send","payload":{}}\'')));
    return;
  }
  const sorted = [...list].sort((a, b) => a.name.localeCompare(b.name));
  el.append(h('table.table.responsive.queue-table', null,
    h('thead', null, h('tr', null, h('th', null, 'Queue'), h('th', null, 'Status'),
      STATES.map(st => h('th.num', null, st)), ctx.canAdmin && h('th.actions', null, h('span.sr-only', null, 'Actions')))),
    h('tbody', null, sorted.map(q => queueRow(q, ctx, refresh)))));
}

function queueRow(q, ctx, refresh) {
  const link = (state, value) => h('a', { href: `#/jobs${toQuery({ queue: q.name, state })}` }, fmt.num(value));
  const actions = [];
  if (ctx.canAdmin) {
    const pause = h('button.btn.small', {
      type: 'button',
      onclick: () => act(pause,
        q.paused
          ? { title: `Resume ${q.name}?`, text: 'Workers will lease its jobs again.', action: 'Resume', danger: false }
          : { title: `Pause ${q.name}?`, text: 'The queue keeps accepting jobs but workers lease none until you resume it.', action: 'Pause' },
        () => post(`/v1/queues/${encodeURIComponent(q.name)}/${q.paused ? 'resume' : 'pause'}`),
        r => `${r.name} is ${r.paused ? 'paused' : 'running again'}`).then(refresh),
    }, q.paused ? 'Resume' : 'Pause');
    actions.push(pause);
    if (q.counts.dead > 0 && ctx.caps?.retryDead) {
      const retry = h('button.btn.small.warn', {
        type: 'button',
        onclick: () => act(retry,
          { title: `Retry every dead job in ${q.name}?`, text: `${fmt.num(q.counts.dead)} dead ${q.counts.dead === 1 ? 'job goes' : 'jobs go'} back to available with attempts reset.`, action: 'Retry all' },
          () => post(`/v1/queues/${encodeURIComponent(q.name)}/retry-dead`),
          r => `${fmt.num(r.retried)} dead ${r.retried === 1 ? 'job' : 'jobs'} in ${r.queue} retried`).then(refresh),
      }, `Retry ${fmt.compact(q.counts.dead)} dead`);
      actions.push(retry);
    }
  }
  return h('tr', { dataset: { queue: q.name } },
    h('td.name', { dataset: { label: 'Queue' } }, h('a', { href: `#/jobs${toQuery({ queue: q.name })}` }, q.name)),
    h('td', { dataset: { label: 'Status' } }, q.paused ? h('span.badge.paused', { dataset: { paused: 'true' } }, 'paused') : h('span.badge.active', { dataset: { paused: 'false' } }, 'active')),
    STATES.map(st => h(`td.num.count-${st}`, { dataset: { label: st, state: st, zero: q.counts[st] ? null : 'true' } }, link(st, q.counts[st]))),
    ctx.canAdmin && h('td.actions', null, h('div.row-actions', null, actions)));
}
