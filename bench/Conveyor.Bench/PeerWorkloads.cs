using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Conveyor.Bench;

/// <summary>One row of the issue-8 table (W1/W2/W3, the peers' workloads).</summary>
internal sealed record PeerResult(string Name, string Store, string Concurrency, string BatchSize, string Measured, string Figures, long Errors);

/// <summary>The three workloads of issue 8, defined as in ../shared/peers (W1 bulk, W2 steady, W3 sustained).</summary>
internal sealed partial class Workloads
{
    private const int W1BatchSize = 1000;
    private const int W1LeaseMax = 1000;
    private const int W1EnqueueConcurrency = 4;
    private const int W3Producers = 8;
    // The peers' W3 runs one worker process; one long-polling worker also takes every job that is ready in one lease.
    private const int W3Workers = 1;
    private const double W2DefaultRate = 500;
    private const double W2Seconds = 20;
    private const double W3Seconds = 30;

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    // ------------------------------------------------------------------ rounds

    /// <summary>
    /// Runs the named workloads (w1, w2, w3) round by round, as the peers' <c>bench-all.sh</c> does: run 1 of each in the
    /// given order, then run 2 of each, and so on. Each workload warms up on its own queue right before its first run.
    /// Grouped instead (every W1 run, then every W2 run), W2 followed three W1 runs whose writes the database was still
    /// flushing; docs/benchmarks.md has both orders measured.
    /// </summary>
    public async Task<IReadOnlyList<PeerResult>> PeerRoundsAsync(IReadOnlyList<string> names, string store, CancellationToken ct)
    {
        var sessions = names.Select(name => name switch
        {
            "w1" => W1Session(store),
            "w2" => W2Session(store),
            "w3" => W3Session(store),
            _ => throw new ArgumentException($"{name} is not one of w1, w2, w3", nameof(names)),
        }).ToList();
        for (var run = 1; run <= options.Runs; run++)
        {
            foreach (var session in sessions)
            {
                if (run == 1) await session.WarmAsync(ct);
                await session.RunAsync(run, ct);
            }
        }
        return [.. sessions.Select(s => s.Result())];
    }

    /// <summary>One workload's warm-up, one measured run of it, and its table row from the runs so far.</summary>
    private sealed record PeerSession(Func<CancellationToken, Task> WarmAsync, Func<int, CancellationToken, Task> RunAsync, Func<PeerResult> Result);

    // ------------------------------------------------------------------ W1 bulk

    private PeerSession W1Session(string store)
    {
        var concurrency = options.Concurrency ?? W1EnqueueConcurrency;
        var workers = options.Workers;
        var errors = new ErrorLog();
        var runs = new List<W1Run>();
        return new PeerSession(
            async ct =>
            {
                if (options.WarmupSeconds > 0)
                    await RunW1Async(Queue("w1", warm: true), Math.Max(W1BatchSize, options.Jobs / 10), concurrency, workers, new ErrorLog(), ct);
            },
            async (run, ct) =>
            {
                var r = await RunW1Async(Queue($"w1-r{run}", warm: false), options.Jobs, concurrency, workers, errors, ct);
                runs.Add(r);
                Console.WriteLine(Inv(
                    $"w1 run {run}/{options.Runs}: enqueued {N(r.Enqueued)} in {r.EnqueueSeconds:0.000} s -> {Rate(r.Enqueued / r.EnqueueSeconds)}; processed {N(r.Completed)} in {r.ProcessSeconds:0.000} s -> {Rate(r.Completed / r.ProcessSeconds)}; total {r.EnqueueSeconds + r.ProcessSeconds:0.000} s (errors so far {errors.Count})"));
            },
            () =>
            {
                var enqueueRate = Median(runs.Select(r => r.Enqueued / r.EnqueueSeconds));
                var processRate = Median(runs.Select(r => r.Completed / r.ProcessSeconds));
                var total = Median(runs.Select(r => r.EnqueueSeconds + r.ProcessSeconds));
                return new PeerResult("W1 bulk", store,
                    Inv($"enqueue {concurrency} requests in flight; {workers} workers (lease max {W1LeaseMax} + one ack per lease)"),
                    Inv($"{W1BatchSize} (batch endpoint)"),
                    Inv($"{N(options.Jobs)} jobs; median of {Runs()}"),
                    Inv($"enqueue {Rate(enqueueRate)}, processing {Rate(processRate)}, total {total:0.00} s"),
                    errors.Count);
            });
    }

    private string Runs() => options.Runs == 1 ? "1 run" : $"{options.Runs} runs";

    /// <summary>Each figure's median taken on its own, as the peers' summaries do.</summary>
    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private sealed record W1Run(long Enqueued, double EnqueueSeconds, long Completed, double ProcessSeconds);

    /// <summary>Enqueue phase (batches), then processing phase (workers start when the enqueue phase ends).</summary>
    private async Task<W1Run> RunW1Async(string queue, int jobs, int concurrency, int workers, ErrorLog errors, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var enqueued = await EnqueueBatchesAsync(queue, jobs, W1BatchSize, concurrency, long.MaxValue, errors, ct);
        var enqueueSeconds = Since(start);

        var leaseUrl = Url($"/v1/queues/{queue}/lease");
        var ackUrl = Url("/v1/jobs/ack");
        long completed = 0;
        long lastAck = 0;
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // Bounded: at most 120 s of processing.
        done.CancelAfter(TimeSpan.FromSeconds(120));
        var processStart = Stopwatch.GetTimestamp();

        async Task Work(int index)
        {
            var conn = new Connection(transport, errors);
            var leased = new LeasedJobs(W1LeaseMax);
            var worker = $"bench-w1-{index}";
            try
            {
                while (Interlocked.Read(ref completed) < enqueued)
                {
                    WriteLease(conn.Body(), W1LeaseMax, 1000, worker);
                    if (await conn.PostAsync(leaseUrl, done.Token) != 200)
                    {
                        continue;
                    }
                    leased.Parse(conn.Response);
                    if (leased.Count == 0)
                    {
                        continue;
                    }
                    leased.WriteAck(conn.Body());
                    if (await conn.PostAsync(ackUrl, done.Token) != 200)
                    {
                        continue;
                    }
                    var ok = CountOk(conn.Response);
                    if (ok != leased.Count)
                    {
                        errors.Add($"ack of {leased.Count} jobs: only {ok} answered 200");
                    }
                    if (Interlocked.Add(ref completed, ok) >= enqueued)
                    {
                        Interlocked.Exchange(ref lastAck, Stopwatch.GetTimestamp());
                        await done.CancelAsync(); // wakes the other workers' long-polls
                    }
                }
            }
            catch (OperationCanceledException) when (done.IsCancellationRequested && !ct.IsCancellationRequested)
            {
            }
        }

        await Task.WhenAll(Enumerable.Range(0, workers).Select(i => Task.Run(() => Work(i), ct)));
        if (Interlocked.Read(ref completed) < enqueued)
        {
            errors.Add($"w1: only {completed} of {enqueued} jobs were processed within 120 s");
            lastAck = Stopwatch.GetTimestamp();
        }
        var processSeconds = Stopwatch.GetElapsedTime(processStart, lastAck).TotalSeconds;
        return new W1Run(enqueued, enqueueSeconds, completed, processSeconds);
    }

    private static void WriteLease(System.Text.Json.Utf8JsonWriter w, int max, int waitMs, string worker)
    {
        w.WriteStartObject();
        w.WriteNumber("max"u8, max);
        w.WriteNumber("lease_ms"u8, 30_000);
        w.WriteNumber("wait_ms"u8, waitMs);
        w.WriteString("worker"u8, worker);
        w.WriteEndObject();
    }

    // ------------------------------------------------------------------ W2 steady

    /// <summary>
    /// Open loop: job i is issued at t0 + i/rate whatever happened to earlier calls (at most 1000 in flight).
    /// The first warm-up seconds of jobs go to the same queue but are not measured. Latency is keyed by the
    /// payload's n: enqueue call = answer - send, enqueue->start = the worker's receipt of the lease answer - send
    /// (both from the client's monotonic clock, so no clock skew).
    /// </summary>
    private PeerSession W2Session(string store)
    {
        var rate = options.Rate > 0 ? options.Rate : W2DefaultRate;
        var seconds = options.DurationSet ? options.DurationSeconds : W2Seconds;
        var errors = new ErrorLog();
        var runs = new List<W2Run>();
        string Ms(Func<W2Run, double> pick) => LatencySummary.Ms(Median(runs.Select(pick)));
        return new PeerSession(
            // Each run's first warm-up seconds of jobs are not measured (RunW2Async).
            _ => Task.CompletedTask,
            async (run, ct) =>
            {
                var r = await RunW2Async(Queue($"w2-r{run}", warm: false), rate, seconds, errors, ct);
                runs.Add(r);
                Console.WriteLine(Inv(
                    $"w2 run {run}/{options.Runs}: {N(r.Measured)} measured jobs at {r.Achieved:0.0}/s issued (target {rate}/s); enqueue call {r.Enqueue.Describe()}; enqueue->start {r.Start.Describe()} (errors so far {errors.Count})"));
            },
            () => new PeerResult("W2 steady", store,
                Inv($"open loop {rate:#,0} jobs/s (≤ 1000 calls in flight), 1 worker (lease max {W1LeaseMax}, wait_ms 1000, its ack in flight while it leases again)"),
                "1 (single-job endpoint)",
                Inv($"{options.WarmupSeconds:0.#} s warm-up + {seconds:0.#} s = {N(runs[0].Measured)} measured jobs, issued at {Median(runs.Select(r => r.Achieved)):#,0.0}/s; median of {Runs()}"),
                Inv($"enqueue call p50 {Ms(r => r.Enqueue.Percentile(50))}, p99 {Ms(r => r.Enqueue.Percentile(99))}; enqueue→start p50 {Ms(r => r.Start.Percentile(50))}, p99 {Ms(r => r.Start.Percentile(99))}, max {Ms(r => r.Start.Max)}"),
                errors.Count));
    }

    private sealed record W2Run(long Measured, double Achieved, LatencySummary Enqueue, LatencySummary Start);

    private async Task<W2Run> RunW2Async(string queue, double rate, double seconds, ErrorLog errors, CancellationToken ct)
    {
        var warmJobs = (int)(options.WarmupSeconds * rate);
        var total = warmJobs + (int)(seconds * rate);
        var enqueueUrl = Url($"/v1/queues/{queue}/jobs");
        var leaseUrl = Url($"/v1/queues/{queue}/lease");
        var ackUrl = Url("/v1/jobs/ack");
        var sent = new long[total];
        var answered = new long[total];
        var received = new long[total];
        long receivedCount = 0;
        using var stopWorker = CancellationTokenSource.CreateLinkedTokenSource(ct);

        async Task Work()
        {
            var conn = new Connection(transport, errors);
            var ackConn = new Connection(transport, errors);
            Task pendingAck = Task.CompletedTask;
            var leased = new LeasedJobs(W1LeaseMax);
            try
            {
                while (true)
                {
                    WriteLease(conn.Body(), W1LeaseMax, 1000, "bench-w2");
                    var status = await conn.PostAsync(leaseUrl, stopWorker.Token);
                    var now = Stopwatch.GetTimestamp();
                    if (status != 200)
                    {
                        continue;
                    }
                    leased.Parse(conn.Response);
                    for (var i = 0; i < leased.Count; i++)
                    {
                        var seq = leased.Seq[i];
                        if (seq >= 0 && seq < total)
                        {
                            received[seq] = now;
                        }
                    }
                    Interlocked.Add(ref receivedCount, leased.Count);
                    if (leased.Count > 0)
                    {
                        // One ack in flight while the next lease waits, as the SDK's worker host acks from its own loop:
                        // a job enqueued meanwhile starts without waiting for the previous ack's commit.
                        await pendingAck;
                        leased.WriteAck(ackConn.Body());
                        pendingAck = ackConn.PostAsync(ackUrl, stopWorker.Token);
                    }
                }
            }
            catch (OperationCanceledException) when (stopWorker.IsCancellationRequested && !ct.IsCancellationRequested)
            {
            }
            try
            {
                await pendingAck;
            }
            catch (OperationCanceledException) when (stopWorker.IsCancellationRequested)
            {
            }
        }

        var worker = Task.Run(Work, ct);
        await Task.Delay(1000, ct); // the worker is connected and idle first, as for the peers

        var pool = new ConcurrentBag<Connection>();
        using var inFlight = new SemaphoreSlim(1000);
        var calls = new List<Task>(total);
        var t0 = Stopwatch.GetTimestamp();

        async Task Send(int i)
        {
            try
            {
                if (!pool.TryTake(out var conn))
                {
                    conn = new Connection(transport, errors);
                }
                WriteJob(conn.Body(), i);
                sent[i] = Stopwatch.GetTimestamp();
                var status = await conn.PostAsync(enqueueUrl, ct);
                if (status is 200 or 201)
                {
                    answered[i] = Stopwatch.GetTimestamp();
                }
                pool.Add(conn);
            }
            finally
            {
                inFlight.Release();
            }
        }

        for (var i = 0; i < total; i++)
        {
            var due = t0 + (long)(i / rate * Stopwatch.Frequency);
            // Sleep (no spinning: the client shares the 2 cores with the server) until the job is due; the
            // timer may fire up to ~1 ms late, which only delays the send, since latency is measured from it.
            while (Stopwatch.GetTimestamp() < due)
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling(wait.TotalMilliseconds))), ct);
            }
            await inFlight.WaitAsync(ct);
            calls.Add(Send(i));
        }
        var issueSeconds = Since(t0);
        await Task.WhenAll(calls);

        // Wait (at most 10 s) until the worker has seen every job, then stop it.
        var until = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
        while (Interlocked.Read(ref receivedCount) < total && Stopwatch.GetTimestamp() < until)
        {
            await Task.Delay(20, ct);
        }
        await stopWorker.CancelAsync();
        await worker;

        var enqueueLatency = new LatencyRecorder();
        var startLatency = new LatencyRecorder();
        long missing = 0;
        for (var i = warmJobs; i < total; i++)
        {
            if (answered[i] > 0)
            {
                enqueueLatency.AddStopwatchTicks(answered[i] - sent[i]);
            }
            if (received[i] > 0 && sent[i] > 0)
            {
                startLatency.AddStopwatchTicks(received[i] - sent[i]);
            }
            else
            {
                missing++;
            }
        }
        if (missing > 0)
        {
            errors.Add($"w2: {missing} measured jobs never reached the worker");
        }
        return new W2Run(total - warmJobs, total / issueSeconds, LatencyRecorder.Summarize([enqueueLatency]), LatencyRecorder.Summarize([startLatency]));
    }

    // ------------------------------------------------------------------ server warm-up

    /// <summary>
    /// The .NET JIT starts every method in quick tier-0 code and recompiles the hot ones with profile data after a
    /// few seconds under load, so a server measured in its first seconds runs slower code than one that has been up
    /// for a while (W1 processing 54k jobs/s in the first run after start, 115k+ from the fourth on; docs/benchmarks.md).
    /// The peers' servers were running before their runs too. Half the time goes to batch rounds, half to single-job
    /// producers with workers, so every route the workloads use is hot.
    /// </summary>
    public async Task WarmServerAsync(CancellationToken ct)
    {
        var seconds = options.ServerWarmupSeconds;
        var start = Stopwatch.GetTimestamp();
        var round = 0;
        while (Since(start) < seconds / 2)
        {
            await RunW1Async(Queue($"server-warm-{++round}", warm: true), Math.Min(options.Jobs, 50_000), W1EnqueueConcurrency, options.Workers, new ErrorLog(), ct);
        }
        var inner = new Workloads(transport, server, options with { Rate = 0 }, runId);
        await inner.RunEndToEndAsync(Queue("server-warm-e2e", warm: true), W3Producers, 1, Math.Max(1, seconds - Since(start)), new ErrorLog(), ct);
        Console.WriteLine(Inv($"server warm-up: {Since(start):0.0} s ({round} batch rounds, then single-job producers with workers)"));
    }

    // ------------------------------------------------------------------ W3 sustained

    private PeerSession W3Session(string store)
    {
        var producers = options.Concurrency ?? W3Producers;
        var seconds = options.DurationSet ? options.DurationSeconds : W3Seconds;
        var inner = new Workloads(transport, server, options with
        {
            Rate = 0,
            Workers = options.WorkersSet ? options.Workers : W3Workers,
            // Leases as large as W1's: with many producers a worker leasing 100 at a time falls behind (docs/benchmarks.md).
            LeaseMax = options.LeaseMaxSet ? options.LeaseMax : W1LeaseMax,
        }, runId);
        var errors = new ErrorLog();
        var completed = new List<double>();
        var enqueued = new List<double>();
        var backlog = new List<double>();
        return new PeerSession(
            async ct =>
            {
                if (options.WarmupSeconds > 0)
                    await inner.RunEndToEndAsync(Queue("w3", warm: true), producers, 1, options.WarmupSeconds, new ErrorLog(), ct);
            },
            async (run, ct) =>
            {
                var r = await inner.RunEndToEndAsync(Queue($"w3-r{run}", warm: false), producers, 1, seconds, errors, ct);
                completed.Add(r.Completed / r.Seconds);
                enqueued.Add(r.Enqueued / r.Seconds);
                backlog.Add(r.Enqueued - r.Completed);
                Console.WriteLine(Inv(
                    $"w3 run {run}/{options.Runs}: {N(r.Completed)} completed in {r.Seconds:0.#} s -> {Rate(completed[^1])} (enqueued {Rate(enqueued[^1])}, backlog {N(r.Enqueued - r.Completed)}) (errors so far {errors.Count})"));
            },
            () => new PeerResult("W3 sustained", store,
                Inv($"{producers} single-job producer loops, {inner.WorkerCount} worker(s) (lease max {inner.LeaseMax} + one ack per lease)"),
                "1 (single-job endpoint)",
                Inv($"{seconds:0.#} s; median of {Runs()}"),
                Inv($"completed {Rate(Median(completed))} (enqueued {Rate(Median(enqueued))}, backlog {N((long)Median(backlog))})"),
                errors.Count));
    }

    // ------------------------------------------------------------------ memory (issue 8: RSS with 1,000,000 waiting jobs)

    public async Task MemoryAsync(ServerHost host, CancellationToken ct)
    {
        var idle = host.ResidentBytes();
        var queue = Queue("memory", warm: false);
        var clock = Stopwatch.StartNew();
        var enqueued = await EnqueueBatchesAsync(queue, options.Jobs, W1BatchSize, W1EnqueueConcurrency, long.MaxValue, new ErrorLog(), ct);
        var seconds = clock.Elapsed.TotalSeconds;
        // A few seconds for the server's own timers (stats sampler, retention) and a GC to run after the burst.
        await Task.Delay(TimeSpan.FromSeconds(5), ct);
        var holding = host.ResidentBytes();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"memory: {N(enqueued)} waiting jobs enqueued in {seconds:0.0} s; server RSS {idle / 1048576.0:0} MiB idle -> {holding / 1048576.0:0} MiB holding them " +
            $"({(holding - idle) / (double)Math.Max(1, enqueued):0} bytes per waiting job)"));
    }
}
