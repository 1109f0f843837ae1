// Tiny DOM helpers. Every piece of data reaches the page as text (textContent), never as markup.

const SVG = 'http://www.w3.org/2000/svg';

/** h('a.link', {href: '#/'}, 'text', child…): an element with attributes, listeners (onclick…) and children. */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  apply(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

function apply(el, attrs) {
  if (!attrs) return;
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'text') el.textContent = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const numberFormat = new Intl.NumberFormat('en');
const compactFormat = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

export const fmt = {
  num: n => numberFormat.format(n ?? 0),
  compact: n => (Math.abs(n) < 10000 ? numberFormat.format(n) : compactFormat.format(n)),
  rate: n => (n >= 100 ? numberFormat.format(Math.round(n)) : n >= 10 ? n.toFixed(1) : n.toFixed(2).replace(/\.?0+$/, '') || '0'),
  /** 2026-11-23 13:45:00 in the viewer's time zone. */
  time(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    const pad = v => String(v).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  },
  clock(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  },
  /** "3 min ago", "in 20 s". */
  ago(iso, now = Date.now()) {
    if (!iso) return '';
    const diff = (new Date(iso).getTime() - now) / 1000;
    const abs = Math.abs(diff);
    const text = abs < 1 ? 'now' : abs < 60 ? `${Math.round(abs)} s` : abs < 3600 ? `${Math.round(abs / 60)} min`
      : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
    if (text === 'now') return 'just now';
    return diff < 0 ? `${text} ago` : `in ${text}`;
  },
  json(text) {
    if (text === null || text === undefined) return null;
    return JSON.stringify(text, null, 2);
  },
};

/** A <time> with the absolute time as text and the relative time as a tooltip (or the other way round). */
export function when(iso, relative = false) {
  if (!iso) return h('span.muted', null, '—');
  return h('time', { datetime: iso, title: relative ? fmt.time(iso) : fmt.ago(iso) }, relative ? fmt.ago(iso) : fmt.time(iso));
}

export const STATES = ['scheduled', 'available', 'running', 'completed', 'dead', 'cancelled'];

export function stateBadge(state) {
  return h(`span.badge.state-${state}`, { dataset: { state } }, state);
}

/** The route's query string as an object, and back. */
export function toQuery(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : '';
}
