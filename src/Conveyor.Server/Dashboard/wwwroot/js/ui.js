// Shared pieces of the page: toasts, the confirmation dialog, the live indicator, polling.
import { h } from './dom.js';

export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const el = h(`div.toast.${kind}`, null, message);
  box.append(el);
  setTimeout(() => el.classList.add('leaving'), kind === 'error' ? 7000 : 3500);
  setTimeout(() => el.remove(), kind === 'error' ? 7400 : 3900);
}

/** Asks before anything that changes jobs or queues. Resolves true when the user confirms. */
export function confirmAction({ title, text, action = 'Confirm', danger = true }) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const ok = document.getElementById('confirm-ok');
  ok.textContent = action;
  ok.className = danger ? 'btn danger' : 'btn primary';
  dialog.returnValue = '';
  dialog.showModal();
  document.getElementById('confirm-cancel').focus();
  return new Promise(resolve => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

/** Runs an action with a confirmation, a busy button, and a toast for the outcome. */
export async function act(button, question, run, done) {
  if (!(await confirmAction(question))) return;
  button.disabled = true;
  try {
    const result = await run();
    toast(typeof done === 'function' ? done(result) : done);
  } catch (e) {
    toast(e.message, 'error');
  } finally {
    button.disabled = false;
  }
}

const live = { el: null, at: 0, error: null, timer: 0 };

export function liveIndicator() {
  live.el = h('span.live', { title: 'Refreshes every 2 seconds' });
  clearInterval(live.timer);
  live.timer = setInterval(paintLive, 1000);
  paintLive();
  return live.el;
}

export function reportLive(error = null) {
  live.at = Date.now();
  live.error = error;
  paintLive();
}

function paintLive() {
  if (!live.el) return;
  const age = live.at ? Math.round((Date.now() - live.at) / 1000) : null;
  live.el.classList.toggle('offline', Boolean(live.error));
  live.el.classList.toggle('stale', !live.error && age !== null && age > 6);
  live.el.textContent = live.error ? 'Offline' : age === null ? 'Connecting' : age <= 2 ? 'Live' : `Updated ${age} s ago`;
  if (live.error) live.el.title = live.error.message;
}

/** Calls tick now and every intervalMs while the tab is visible; returns a stop function. */
export function poll(tick, intervalMs = 2000) {
  let stopped = false;
  let timer = 0;
  const loop = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await tick();
        reportLive();
      } catch (e) {
        if (e.name !== 'AbortError') reportLive(e);
      }
    }
    if (!stopped) timer = setTimeout(loop, intervalMs);
  };
  const wake = () => { if (!document.hidden && !stopped) { clearTimeout(timer); loop(); } };
  document.addEventListener('visibilitychange', wake);
  loop();
  return () => { stopped = true; clearTimeout(timer); document.removeEventListener('visibilitychange', wake); };
}

export function errorPanel(e) {
  return h('div.panel.empty.error', { role: 'alert' }, h('h2', null, e.status ? `${e.status} ${e.title || ''}` : 'Something went wrong'), h('p', null, e.message));
}
