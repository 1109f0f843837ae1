// Boot: find out who we are (asking for a key when the server has keys), then route #/… to a view.
import { h, clear } from './dom.js';
import { auth, get, capabilities, ApiError } from './api.js';
import { liveIndicator, errorPanel } from './ui.js';
import { overview } from './views/overview.js';
import { jobs } from './views/jobs.js';
import { jobDetail } from './views/job.js';
import { login } from './views/login.js';
import { submissions, schedules } from './views/features.js';

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const session = document.getElementById('session');

const state = { role: null, keysRequired: false, caps: null };
let stopView = null;

function context() {
  return { role: state.role, canAdmin: state.role === 'admin', keysRequired: state.keysRequired, caps: state.caps };
}

async function whoami(key = auth.key) {
  return get('/v1/auth/whoami', { key });
}

async function boot() {
  const caps = capabilities();
  try {
    const me = await whoami();
    state.role = me.role;
    state.keysRequired = me.keys_required;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      const hadKey = Boolean(auth.key);
      auth.clear();
      state.caps = await caps;
      return showLogin(hadKey ? 'That key is not one this server knows (any more). Enter another.' : null);
    }
    paintChrome();
    clear(view).append(errorPanel(e));
    return;
  }
  state.caps = await caps;
  paintChrome();
  route();
}

function showLogin(message) {
  stopCurrent();
  state.role = null;
  paintChrome();
  clear(view).append(login({
    message,
    async submit(key) {
      const me = await whoami(key);
      auth.set(key);
      state.role = me.role;
      state.keysRequired = me.keys_required;
      paintChrome();
      route();
    },
  }));
}

auth.onUnauthorized(() => {
  auth.clear();
  showLogin('The server no longer accepts this key. Enter another.');
});

function paintChrome() {
  const here = location.hash.replace(/^#/, '') || '/';
  const section = here.startsWith('/jobs') ? 'jobs' : here.startsWith('/submissions') ? 'submissions' : here.startsWith('/schedules') ? 'schedules' : 'overview';
  clear(nav);
  if (state.role) {
    const tabs = [['overview', '#/', 'Overview'], ['jobs', '#/jobs', 'Jobs']];
    if (state.caps?.submissions) tabs.push(['submissions', '#/submissions', 'Submissions']);
    if (state.caps?.schedules) tabs.push(['schedules', '#/schedules', 'Schedules']);
    for (const [key, href, text] of tabs) nav.append(h('a', { href, 'aria-current': key === section ? 'page' : null }, text));
  }
  clear(session);
  if (!state.role) return;
  session.append(liveIndicator());
  const readOnly = state.role !== 'admin';
  session.append(h(`span.role.${state.role}`, {
    title: state.keysRequired ? `Signed in with a ${state.role} key${readOnly ? ': actions that change jobs or queues are hidden' : ''}` : 'This server has no API keys: everyone is admin',
    dataset: { role: state.role },
  }, state.keysRequired ? (readOnly ? `${state.role} · read-only` : state.role) : 'open · no keys'));
  if (state.keysRequired) {
    session.append(h('button.btn.ghost.small', { type: 'button', onclick: () => { auth.clear(); showLogin(null); } }, 'Sign out'));
  }
}

function stopCurrent() {
  if (stopView) { try { stopView(); } catch { /* a view that failed to stop must not block the next */ } }
  stopView = null;
}

function route() {
  if (!state.role) return;
  stopCurrent();
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const params = Object.fromEntries(new URLSearchParams(query));
  const ctx = { ...context(), params };
  paintChrome();
  clear(view);
  let match;
  if (path === '/' || path === '') stopView = overview(view, ctx);
  else if ((match = path.match(/^\/jobs\/(\d+)$/))) stopView = jobDetail(view, { ...ctx, id: match[1] });
  else if (path === '/jobs') stopView = jobs(view, ctx);
  else if (path === '/submissions') stopView = submissions(view, ctx);
  else if (path === '/schedules') stopView = schedules(view, ctx);
  else view.append(h('div.panel.empty', null, h('h2', null, 'Nothing here'), h('p', null, 'That page does not exist. '), h('a', { href: '#/' }, 'Back to the overview')));
  view.focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
boot();
