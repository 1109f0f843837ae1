// The v1 HTTP API with the user's key. The key lives in sessionStorage: it is gone when the tab closes.

const KEY = 'conveyor.apiKey';

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

const unauthorizedHandlers = new Set();

export const auth = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
  /** Called when the server answers 401 to a request made with the stored key (revoked, or the server restarted with other keys). */
  onUnauthorized(handler) { unauthorizedHandlers.add(handler); },
};

export async function api(method, path, { body, key = auth.key, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Offline', 'The server cannot be reached.');
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const error = new ApiError(response.status, data?.title, data?.detail || (typeof data === 'string' ? data : null));
    if (response.status === 401 && key && key === auth.key) for (const handler of unauthorizedHandlers) handler(error);
    throw error;
  }
  return data;
}

export const get = (path, options) => api('GET', path, options);
export const post = (path, body, options) => api('POST', path, { ...options, body });

/** Which optional routes this server has, read from its OpenAPI document (served without a key). */
export async function capabilities() {
  const has = (paths, path, method) => Boolean(paths?.[path]?.[method]);
  try {
    const doc = await fetch('/openapi/v1.json', { cache: 'no-store' }).then(r => (r.ok ? r.json() : null));
    const paths = doc?.paths ?? {};
    return {
      deleteJob: has(paths, '/v1/jobs/{id}', 'delete'),
      retryDead: has(paths, '/v1/queues/{queue}/retry-dead', 'post'),
      history: has(paths, '/v1/stats/history', 'get'),
      submissions: has(paths, '/v1/submissions/{id}', 'get'),
      submissionList: has(paths, '/v1/submissions', 'get'),
      schedules: has(paths, '/v1/schedules', 'get'),
    };
  } catch {
    return { deleteJob: false, retryDead: true, history: true, submissions: false, submissionList: false, schedules: false };
  }
}
