'use strict';
// Conveyor as a "peer" of the peers' own Node driver (../shared/peers/bench/driver.js), so that Conveyor runs the
// very workloads, Node runtime and process layout the peers ran: W1, W2 and W3 as the driver defines them, undici for
// every call, workers in a child process. bench/peer-driver/run.sh copies this file into a copy of the peers' folder
// as bench/adapters/conveyor-<store>.js and starts the server; see docs/benchmarks.md.
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

async function call(method, path, body) {
  const res = await pool.request({ method, path,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  return res.statusCode === 204 || !text ? null : JSON.parse(text);
}

async function ack(jobs) {
  const r = await call('POST', '/v1/jobs/ack', { complete: jobs.map((j) => ({ id: j.id, lease_token: j.lease.token })) });
  const failed = r.results.filter((x) => x.status !== 200);
  if (failed.length) throw new Error(`ack: ${failed.length} of ${jobs.length} not completed (${failed[0].status} ${failed[0].detail || ''})`);
}

module.exports = {
  // 4 loops leasing up to 1,000 jobs: conveyor-bench's W1 worker, and the best of W1 runs with 1, 2, 4 and 8 loops.
  defaults: { concurrency: 4, batch: 1000, bulkSize: 1000 },

  async info() {
    const stats = await call('GET', '/v1/stats').catch(() => null);
    return {
      client: `undici ${require('undici/package.json').version} (Pool.request), adapter conveyor.js`,
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
    const r = await call('POST', `/v1/queues/${Q}/jobs/batch`, payloads.map((payload) => ({ payload })));
    if (!r || r.count !== payloads.length) throw new Error(`batch of ${payloads.length}: ${r && r.count} accepted`);
  },

  async enqueue(ctx, payload) { await call('POST', `/v1/queues/${Q}/jobs`, { payload }); },

  async startWorker(ctx, onJob, { concurrency, batch }) {
    ctx.running = true;
    const loop = async (i) => {
      const lease = { max: Math.min(1000, Math.max(1, batch)), wait_ms: LONG_POLL_MS, lease_ms: 30000, worker: `peer-driver-${process.pid}-${i}` };
      let acking = Promise.resolve();
      while (ctx.running) {
        const jobs = await call('POST', `/v1/queues/${Q}/lease`, lease);
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

  async close() {},
};
