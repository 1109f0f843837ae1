// A time-series line chart drawn as SVG: a fixed window ending now, one line per series, a hover read-out.
import { h, s, clear, fmt } from './dom.js';

const PAD = { left: 46, right: 14, top: 24, bottom: 26 };

/**
 * lineChart({ series: [{ key, label, cls, area? }], windowMs, unit }) returns { el, update(samples, nowMs) }.
 * samples: [{ at_ms, [key]: number }], oldest first, one per interval.
 */
export function lineChart({ series, windowMs, intervalMs = 1000, bucketMs = 5000, unit = '', label }) {
  const svg = s('svg', { class: 'chart-svg', role: 'img', 'aria-label': label });
  const tip = h('div.chart-tip', { hidden: true });
  const legend = h('ul.legend', null, series.map(sr => h('li', null, h(`span.swatch.${sr.cls}`), sr.label)));
  const el = h('div.chart', null, h('div.chart-plot', null, svg, tip), legend);
  let samples = [];
  let now = Date.now();
  let width = 0;
  const height = 220;

  const observer = new ResizeObserver(entries => {
    const w = Math.round(entries[0].contentRect.width);
    if (w !== width) { width = w; draw(); }
  });
  observer.observe(el);

  const plotW = () => Math.max(10, width - PAD.left - PAD.right);
  const plotH = height - PAD.top - PAD.bottom;
  const start = () => now - windowMs;
  const x = t => PAD.left + ((t - start()) / windowMs) * plotW();
  let yMax = 1;
  const y = v => PAD.top + plotH - (v / yMax) * plotH;

  function draw() {
    clear(svg);
    if (!width) return;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    // Averages over a few seconds, so a bursty second does not hide the trend; the read-out shows the exact seconds.
    const visible = bucket(samples.filter(p => p.at_ms >= start()), series, bucketMs);
    const peak = Math.max(0, ...visible.flatMap(p => series.map(sr => p[sr.key] || 0)));
    yMax = niceCeil(peak);

    const grid = s('g', { class: 'grid' });
    const ticks = 4;
    for (let i = 0; i <= ticks; i++) {
      const v = (yMax / ticks) * i;
      const yy = Math.round(y(v)) + 0.5;
      grid.append(s('line', { x1: PAD.left, x2: PAD.left + plotW(), y1: yy, y2: yy }));
      grid.append(s('text', { x: PAD.left - 8, y: yy + 4, 'text-anchor': 'end' }, fmt.compact(+v.toFixed(2))));
    }
    const step = windowMs >= 10 * 60_000 ? 5 * 60_000 : 60_000;
    for (let t = Math.ceil(start() / step) * step; t <= now; t += step) {
      const xx = Math.round(x(t)) + 0.5;
      grid.append(s('line', { class: 'v', x1: xx, x2: xx, y1: PAD.top, y2: PAD.top + plotH }));
      grid.append(s('text', { x: xx, y: height - 8, 'text-anchor': 'middle' }, fmt.clock(t)));
    }
    svg.append(grid);
    if (unit) svg.append(s('text', { class: 'unit', x: PAD.left, y: 11 }, unit));

    for (const sr of series) {
      const runs = splitAtGaps(visible, Math.max(intervalMs, bucketMs));
      for (const run of runs) {
        if (!run.length) continue;
        const d = run.map((p, i) => `${i ? 'L' : 'M'}${x(p.at_ms).toFixed(1)},${y(p[sr.key] || 0).toFixed(1)}`).join('');
        if (sr.area) {
          const base = y(0).toFixed(1);
          svg.append(s('path', { class: `area ${sr.cls}`, d: `${d}L${x(run.at(-1).at_ms).toFixed(1)},${base}L${x(run[0].at_ms).toFixed(1)},${base}Z` }));
        }
        svg.append(s('path', { class: `line ${sr.cls}`, d }));
      }
    }
    if (!visible.length) {
      svg.append(s('text', { class: 'nodata', x: PAD.left + plotW() / 2, y: PAD.top + plotH / 2, 'text-anchor': 'middle' }, 'Waiting for the first samples…'));
    }
    svg.append(cursor);
  }

  // Hover read-out: the sample nearest the pointer.
  const cursor = s('g', { class: 'cursor', visibility: 'hidden' });
  svg.addEventListener('pointermove', event => {
    const box = svg.getBoundingClientRect();
    const t = start() + ((event.clientX - box.left - PAD.left) / plotW()) * windowMs;
    const p = nearest(samples, t);
    if (!p || p.at_ms < start()) return hide();
    clear(cursor);
    const xx = x(p.at_ms);
    cursor.append(s('line', { x1: xx, x2: xx, y1: PAD.top, y2: PAD.top + plotH }));
    for (const sr of series) cursor.append(s('circle', { class: sr.cls, cx: xx, cy: y(p[sr.key] || 0), r: 3.5 }));
    cursor.setAttribute('visibility', 'visible');
    clear(tip).append(
      h('div.tip-time', null, new Date(p.at_ms).toLocaleTimeString()),
      ...series.map(sr => h('div', null, h(`span.swatch.${sr.cls}`), `${sr.label} `, h('b', null, fmt.num(p[sr.key] || 0)))));
    tip.hidden = false;
    const left = Math.min(Math.max(xx + 12, 0), width - tip.offsetWidth - 4);
    tip.style.left = `${xx + 12 + tip.offsetWidth > width ? xx - tip.offsetWidth - 12 : left}px`;
  });
  const hide = () => { cursor.setAttribute('visibility', 'hidden'); tip.hidden = true; };
  svg.addEventListener('pointerleave', hide);

  return {
    el,
    update(next, nowMs = Date.now()) {
      samples = next;
      now = nowMs;
      draw();
    },
    destroy() { observer.disconnect(); },
  };
}

/** Averages of each series over consecutive windows of bucketMs, stamped with the window's last sample. */
function bucket(points, series, bucketMs) {
  if (bucketMs <= 0 || !points.length) return points;
  const out = [];
  let group = [];
  const flush = () => {
    if (!group.length) return;
    const avg = { at_ms: group.at(-1).at_ms };
    for (const sr of series) avg[sr.key] = group.reduce((sum, p) => sum + (p[sr.key] || 0), 0) / group.length;
    out.push(avg);
    group = [];
  };
  for (const p of points) {
    if (group.length && Math.floor(p.at_ms / bucketMs) !== Math.floor(group[0].at_ms / bucketMs)) flush();
    group.push(p);
  }
  flush();
  return out;
}

function splitAtGaps(points, intervalMs) {
  const runs = [[]];
  for (let i = 0; i < points.length; i++) {
    if (i && points[i].at_ms - points[i - 1].at_ms > intervalMs * 2.5) runs.push([]);
    runs.at(-1).push(points[i]);
  }
  return runs;
}

function nearest(points, t) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].at_ms < t) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(points[lo - 1].at_ms - t) < Math.abs(points[lo].at_ms - t)) lo--;
  return points[lo];
}

/** 1, 2, 2.5, 5 × 10^n at or above v (4 grid steps stay round numbers). */
function niceCeil(v) {
  if (v <= 4) return 4;
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 4, 5, 8, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}
