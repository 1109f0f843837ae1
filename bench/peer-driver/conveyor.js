'use strict';
// Conveyor as a "peer" of the peers' own Node driver (../shared/peers/bench/driver.js), so that Conveyor runs the
// very workloads, Node runtime and process layout the peers ran: W1, W2 and W3 as the driver defines them, workers in
// a child process. bench/peer-driver/run.sh copies this file into a copy of the peers' folder
// as bench/adapters/conveyor-<store>.js and starts the server; see docs/benchmarks.md.
//
// Transport (CONVEYOR_TRANSPORT): "socket" (the default) sends every call as a message on one WebSocket per process,
// GET /v1/jobs/socket, many in flight at once; "http" sends each as its own HTTP request through undici.
//
// Worker model: CONCURRENCY loops in each worker process, each one
//   lease (long poll, up to BATCH jobs) -> the no-op handler per job -> one ack completing the batch.
// A loop leases again while its ack is in flight (at most one), as conveyor-bench's workers do (the .NET SDK's worker
// also sends its outcomes in the background).

const { Pool } = require('undici');

const BASE = process.env.HTTP_BASE || 'http://127.0.0.1:5099';
const LONG_POLL_MS = 1000;

// Every run gets a queue of its own (the API has no "drop every job of a queue"). The driver loads this module
// before it forks its workers with a copy of its environment, so they lease from the same queue.
if (!process.env.CONVEYOR_BENCH_QUEUE) {
  process.env.CONVEYOR_BENCH_QUEUE = `peer-driver-${Date.now().toString(36)}-${process.pid}`;
}
const Q = encodeURIComponent(process.env.CONVEYOR_BENCH_QUEUE);

// undici's own request API (the engine under Node's fetch, without fetch's WHATWG layer), on a pool of keep-alive
// connections, one request on each at a time. Per call it cost the producer process less CPU than Node's http module
// or fetch (docs/benchmarks.md); run.sh installs the version it names.
const pool = new Pool(BASE, { connections: 64, pipelining: 1 });

async function httpCall(method, path, body) {
  const res = await pool.request({ method, path,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  return res.statusCode === 204 || !text ? null : JSON.parse(text);
}

// One WebSocket per process (Node's own WebSocket, also undici's), opened on first use; answers matched by id.
let socket = null;
let socketClose = () => {};
function openSocket() {
  if (socket) return socket;
  const pending = new Map();
  let next = 0;
  socket = new Promise((resolve, reject) => {
    const ws = new WebSocket(`${BASE.replace(/^http/, 'ws')}/v1/jobs/socket`);
    socketClose = () => ws.close();
    ws.onopen = () => resolve((type, fields) => new Promise((ok, fail) => {
      const id = ++next;
      pending.set(id, { ok, fail });
      ws.send(JSON.stringify({ type, id, ...fields }));
    }));
    ws.onerror = (e) => reject(new Error(`jobs socket: ${e.message || 'connection failed'}`));
    ws.onclose = () => { for (const p of pending.values()) p.fail(new Error('jobs socket closed')); pending.clear(); };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'ping') { ws.send('{"type":"pong"}'); return; }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.type === 'error') p.fail(new Error(`${m.status} ${m.detail}`));
      else p.ok(m.body);
    };
  });
  return socket;
}

// The HTTP route's answer body either way (null for 204).
async function call(type, queue, body) {
  if (process.env.CONVEYOR_TRANSPORT !== 'http') return (await openSocket())(type, { queue, body });
  const path = { enqueue: `/v1/queues/${Q}/jobs`, enqueue_batch: `/v1/queues/${Q}/jobs/batch`,
    lease: `/v1/queues/${Q}/lease`, ack: '/v1/jobs/ack' }[type];
  return httpCall('POST', path, body);
}

async function ack(jobs) {
  const r = await call('ack', undefined, { complete: jobs.map((j) => ({ id: j.id, lease_token: j.lease.token })) });
  const failed = r.results.filter((x) => x.status !== 200);
  if (failed.length) throw new Error(`ack: ${failed.length} of ${jobs.length} not completed (${failed[0].status} ${failed[0].detail || ''})`);
}

module.exports = {
  // 4 loops leasing up to 1,000 jobs: conveyor-bench's W1 worker, and the best of W1 runs with 1, 2, 4 and 8 loops.
  defaults: { concurrency: 4, batch: 1000, bulkSize: 1000 },

  async info() {
    const stats = await httpCall('GET', '/v1/stats').catch(() => null);
    return {
      client: process.env.CONVEYOR_TRANSPORT === 'http'
        ? `undici ${require('undici/package.json').version} (Pool.request), adapter conveyor.js`
        : `Node ${process.version} WebSocket on /v1/jobs/socket, adapter conveyor.js`,
      server: `conveyor (${process.env.CONVEYOR_STORE || 'unknown store'}) at ${BASE}${stats ? '' : ', not answering'}`,
      durability: {
        sqlite: 'SQLite WAL with synchronous=FULL: fsync before every 2xx, concurrent requests grouped into one commit',
        postgres: 'PostgreSQL synchronous_commit=on: WAL flushed before every 2xx, concurrent requests grouped into one commit',
      }[process.env.CONVEYOR_STORE] || 'durable commit before every 2xx',
    };
  },

  async open() {
    return { running: false, loops: [] };
  },

  async enqueueBulk(ctx, payloads) {
    const r = await call('enqueue_batch', process.env.CONVEYOR_BENCH_QUEUE, payloads.map((payload) => ({ payload })));
    if (!r || r.count !== payloads.length) throw new Error(`batch of ${payloads.length}: ${r && r.count} accepted`);
  },

  async enqueue(ctx, payload) { await call('enqueue', process.env.CONVEYOR_BENCH_QUEUE, { payload }); },

  async startWorker(ctx, onJob, { concurrency, batch }) {
    ctx.running = true;
    const loop = async (i) => {
      const lease = { max: Math.min(1000, Math.max(1, batch)), wait_ms: LONG_POLL_MS, lease_ms: 30000, worker: `peer-driver-${process.pid}-${i}` };
      let acking = Promise.resolve();
      while (ctx.running) {
        const jobs = await call('lease', process.env.CONVEYOR_BENCH_QUEUE, lease);
        if (!jobs || !jobs.length) continue;
        for (const j of jobs) onJob(j.payload);
        await acking; // at most one ack in flight per loop
        acking = ack(jobs);
      }
      await acking;
    };
    ctx.loops = Array.from({ length: concurrency }, (_, i) => loop(i).catch((e) => console.error('conveyor worker', e.message)));
  },

  async stopWorker(ctx) { ctx.running = false; await Promise.all(ctx.loops); },

  async close() { socketClose(); },
};
