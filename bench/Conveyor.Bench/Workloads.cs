using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Conveyor.Bench;

/// <summary>One row of the final table.</summary>
internal sealed record WorkloadResult(
    string Name, string Concurrency, string BatchSize, string Jobs, string Duration,
    string Throughput, string Latency, long Errors);

/// <summary>
/// The three workloads. Each measures on its own fresh queue after a warm-up on another fresh queue,
/// and every loop is bounded by a job count or a deadline.
/// </summary>
internal sealed partial class Workloads(Transport transport, Uri server, BenchOptions options, string runId)
{
    private const string Payload = "{\"n\": i}";

    private Uri Url(string path) => new(server, path);

    public int WorkerCount => options.Workers;
    public int LeaseMax => options.LeaseMax;

    private string Queue(string workload, bool warm) => $"bench-{workload}-{(warm ? "warm-" : "")}{runId}";

    private static double Since(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds;

    private static string Rate(double perSecond) => perSecond.ToString("#,0", CultureInfo.InvariantCulture) + " jobs/s";

    private static string N(long n) => n.ToString("#,0", CultureInfo.InvariantCulture);

    private static string Secs(double s) => s.ToString("0.##", CultureInfo.InvariantCulture) + " s";

    // ------------------------------------------------------------------ batch

    public async Task<WorkloadResult> BatchAsync(CancellationToken ct)
    {
        var batch = options.BatchSize ?? BenchOptions.DefaultBatchSize;
        var concurrency = options.Concurrency ?? BenchOptions.DefaultBatchConcurrency;
        if (options.WarmupSeconds > 0)
        {
            // Warm-up: a tenth of the run (at most the warm-up time) on its own queue.
            await EnqueueBatchesAsync(Queue("batch", warm: true), Math.Max(batch, options.Jobs / 10), batch, concurrency,
                Stopwatch.GetTimestamp() + (long)(options.WarmupSeconds * Stopwatch.Frequency), new ErrorLog(), ct);
        }

        var errors = new ErrorLog();
        var start = Stopwatch.GetTimestamp();
        var enqueued = await EnqueueBatchesAsync(Queue("batch", warm: false), options.Jobs, batch, concurrency, long.MaxValue, errors, ct);
        var seconds = Since(start);
        var rate = enqueued / seconds;
        Console.WriteLine(
            $"batch:  {N(enqueued)} jobs in {seconds:0.000} s -> {Rate(rate)} (batch {batch}, concurrency {concurrency}, errors {errors.Count})");
        return new WorkloadResult("batch", concurrency.ToString(CultureInfo.InvariantCulture), batch.ToString(CultureInfo.InvariantCulture),
            N(options.Jobs), Secs(seconds), Rate(rate), "-", errors.Count);
    }

    /// <summary>Enqueues <paramref name="jobs"/> jobs in batches, <paramref name="concurrency"/> requests in flight; returns jobs accepted.</summary>
    private async Task<long> EnqueueBatchesAsync(
        string queue, int jobs, int batch, int concurrency, long deadline, ErrorLog errors, CancellationToken ct)
    {
        var url = Url($"/v1/queues/{queue}/jobs/batch");
        var batches = (jobs + batch - 1) / batch;
        var next = -1;
        long accepted = 0;

        async Task Loop()
        {
            var conn = new Connection(transport, errors);
            int b;
            while ((b = Interlocked.Increment(ref next)) < batches && Stopwatch.GetTimestamp() < deadline)
            {
                ct.ThrowIfCancellationRequested();
                var first = b * batch;
                var count = Math.Min(batch, jobs - first);
                WriteJobArray(conn.Body(), first, count);
                if (await conn.PostAsync(url, ct) == 200)
                {
                    var got = ReadCount(conn.Response);
                    if (got != count)
                    {
                        errors.Add($"batch of {count} answered count {got}");
                    }
                    Interlocked.Add(ref accepted, got);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Loop, ct)));
        return accepted;
    }

    private static void WriteJobArray(Utf8JsonWriter w, long first, int count)
    {
        w.WriteStartArray();
        for (var i = 0; i < count; i++)
        {
            WriteJob(w, first + i);
        }
        w.WriteEndArray();
    }

    private static void WriteJob(Utf8JsonWriter w, long n)
    {
        w.WriteStartObject();
        w.WriteStartObject("payload"u8);
        w.WriteNumber("n"u8, n);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>The "count" of a batch answer (-1 when missing).</summary>
    private static long ReadCount(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals("count"u8))
            {
                reader.Read();
                return reader.GetInt64();
            }
        }
        return -1;
    }

    // ------------------------------------------------------------------ single

    public async Task<WorkloadResult> SingleAsync(CancellationToken ct)
    {
        var concurrency = options.Concurrency ?? BenchOptions.DefaultSingleConcurrency;
        if (options.WarmupSeconds > 0)
        {
            await EnqueueSinglesAsync(Queue("single", warm: true), concurrency, options.WarmupSeconds, new ErrorLog(), ct);
        }
        var errors = new ErrorLog();
        var (enqueued, seconds, latency) = await EnqueueSinglesAsync(Queue("single", warm: false), concurrency, options.DurationSeconds, errors, ct);
        var rate = enqueued / seconds;
        Console.WriteLine(
            $"single: {N(enqueued)} jobs in {seconds:0.000} s -> {Rate(rate)}, latency {latency.Describe()} (concurrency {concurrency}, errors {errors.Count})");
        return new WorkloadResult("single", concurrency.ToString(CultureInfo.InvariantCulture), "1", N(enqueued), Secs(seconds),
            Rate(rate), "enqueue " + latency.Describe(), errors.Count);
    }

    private async Task<(long Enqueued, double Seconds, LatencySummary Latency)> EnqueueSinglesAsync(
        string queue, int concurrency, double duration, ErrorLog errors, CancellationToken ct)
    {
        var url = Url($"/v1/queues/{queue}/jobs");
        var recorders = Enumerable.Range(0, concurrency).Select(_ => new LatencyRecorder()).ToArray();
        long n = -1;
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(duration * Stopwatch.Frequency);

        async Task Loop(LatencyRecorder recorder)
        {
            var conn = new Connection(transport, errors);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                ct.ThrowIfCancellationRequested();
                WriteJob(conn.Body(), Interlocked.Increment(ref n));
                var t0 = Stopwatch.GetTimestamp();
                var status = await conn.PostAsync(url, ct);
                if (status is 201 or 200)
                {
                    recorder.AddStopwatchTicks(Stopwatch.GetTimestamp() - t0);
                }
            }
        }

        await Task.WhenAll(recorders.Select(r => Task.Run(() => Loop(r), ct)));
        var seconds = Since(start);
        return (recorders.Sum(r => (long)r.Count), seconds, LatencyRecorder.Summarize(recorders));
    }

    // ------------------------------------------------------------------ e2e

    public async Task<WorkloadResult> EndToEndAsync(CancellationToken ct)
    {
        var producers = options.Concurrency ?? BenchOptions.DefaultE2eProducers;
        var batch = options.BatchSize ?? 1;
        if (options.WarmupSeconds > 0)
        {
            await RunEndToEndAsync(Queue("e2e", warm: true), producers, batch, options.WarmupSeconds, new ErrorLog(), ct);
        }
        var errors = new ErrorLog();
        var r = await RunEndToEndAsync(Queue("e2e", warm: false), producers, batch, options.DurationSeconds, errors, ct);
        var completedRate = r.Completed / r.Seconds;
        var enqueuedRate = r.Enqueued / r.Seconds;
        Console.WriteLine(
            $"e2e:    {N(r.Completed)} jobs completed in {r.Seconds:0.000} s -> {Rate(completedRate)} " +
            $"(enqueued {N(r.Enqueued)} = {Rate(enqueuedRate)}); enqueue->lease {r.ToLease.Describe()}; " +
            $"enqueue->ack {r.ToAck.Describe()} (producers {producers}, batch {batch}, workers {options.Workers}, " +
            $"lease max {options.LeaseMax}{(options.Rate > 0 ? $", rate limit {options.Rate} jobs/s" : "")}, errors {errors.Count})");
        return new WorkloadResult("e2e",
            $"{producers} producers, {options.Workers} workers (lease max {options.LeaseMax})",
            batch.ToString(CultureInfo.InvariantCulture),
            $"{N(r.Enqueued)} enqueued{(options.Rate > 0 ? $" (limit {options.Rate:#,0}/s)" : "")}",
            Secs(r.Seconds),
            $"{Rate(completedRate)} completed ({Rate(enqueuedRate)} enqueued)",
            $"enqueue->lease {r.ToLease.Describe()}; enqueue->ack p50 {LatencySummary.Ms(r.ToAck.Percentile(50))}, " +
            $"p99 {LatencySummary.Ms(r.ToAck.Percentile(99))}",
            errors.Count);
    }

    private sealed record EndToEnd(long Enqueued, long Completed, double Seconds, LatencySummary ToLease, LatencySummary ToAck);

    private async Task<EndToEnd> RunEndToEndAsync(string queue, int producers, int batch, double duration, ErrorLog errors, CancellationToken ct)
    {
        var enqueueUrl = Url(batch > 1 ? $"/v1/queues/{queue}/jobs/batch" : $"/v1/queues/{queue}/jobs");
        var leaseUrl = Url($"/v1/queues/{queue}/lease");
        var ackUrl = Url("/v1/jobs/ack");
        long enqueued = 0, completed = 0, issued = 0;
        var toLease = Enumerable.Range(0, options.Workers).Select(_ => new LatencyRecorder()).ToArray();
        var toAck = Enumerable.Range(0, options.Workers).Select(_ => new LatencyRecorder()).ToArray();
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(duration * Stopwatch.Frequency);

        async Task Produce()
        {
            var conn = new Connection(transport, errors);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                ct.ThrowIfCancellationRequested();
                var first = Interlocked.Add(ref issued, batch) - batch;
                if (options.Rate > 0)
                {
                    // Open-loop pacing: job k is due at start + k / rate.
                    var due = start + (long)(first / options.Rate * Stopwatch.Frequency);
                    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                    if (due >= deadline)
                    {
                        return;
                    }
                    if (wait > TimeSpan.FromMilliseconds(1))
                    {
                        await Task.Delay(wait, ct);
                    }
                }
                if (batch > 1)
                {
                    WriteJobArray(conn.Body(), first, batch);
                }
                else
                {
                    WriteJob(conn.Body(), first);
                }
                var status = await conn.PostAsync(enqueueUrl, ct);
                if ((status is 200 or 201) && Stopwatch.GetTimestamp() < deadline)
                {
                    Interlocked.Add(ref enqueued, batch > 1 ? ReadCount(conn.Response) : 1);
                }
            }
        }

        async Task Work(int index)
        {
            var conn = new Connection(transport, errors);
            var leased = new LeasedJobs(options.LeaseMax);
            var worker = $"bench-{index}";
            while (Stopwatch.GetTimestamp() < deadline)
            {
                ct.ThrowIfCancellationRequested();
                var w = conn.Body();
                w.WriteStartObject();
                w.WriteNumber("max"u8, options.LeaseMax);
                w.WriteNumber("lease_ms"u8, 30_000);
                w.WriteNumber("wait_ms"u8, 1000);
                w.WriteString("worker"u8, worker);
                w.WriteEndObject();
                var status = await conn.PostAsync(leaseUrl, ct);
                if (status != 200)
                {
                    continue; // 204: nothing within wait_ms
                }
                var now = DateTime.UtcNow.Ticks;
                leased.Parse(conn.Response);
                for (var i = 0; i < leased.Count; i++)
                {
                    if (leased.CreatedTicks[i] > 0)
                    {
                        toLease[index].Add((now - leased.CreatedTicks[i]) / TimeSpan.TicksPerMicrosecond);
                    }
                }
                if (leased.Count == 0)
                {
                    continue;
                }
                leased.WriteAck(conn.Body());
                if (await conn.PostAsync(ackUrl, ct) != 200)
                {
                    continue;
                }
                var ackedAt = DateTime.UtcNow.Ticks;
                var ok = CountOk(conn.Response);
                if (ok != leased.Count)
                {
                    errors.Add($"ack of {leased.Count} jobs: only {ok} answered 200: {System.Text.Encoding.UTF8.GetString(conn.Response)}");
                }
                if (Stopwatch.GetTimestamp() < deadline)
                {
                    Interlocked.Add(ref completed, ok);
                    for (var i = 0; i < leased.Count; i++)
                    {
                        if (leased.CreatedTicks[i] > 0)
                        {
                            toAck[index].Add((ackedAt - leased.CreatedTicks[i]) / TimeSpan.TicksPerMicrosecond);
                        }
                    }
                }
            }
        }

        var tasks = Enumerable.Range(0, producers).Select(_ => Task.Run(Produce, ct))
            .Concat(Enumerable.Range(0, options.Workers).Select(i => Task.Run(() => Work(i), ct)));
        await Task.WhenAll(tasks);
        return new EndToEnd(enqueued, completed, duration, LatencyRecorder.Summarize(toLease), LatencyRecorder.Summarize(toAck));
    }

    /// <summary>How many entries of an ack answer's "results" have status 200.</summary>
    private static int CountOk(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        var ok = 0;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.GetInt32() == 200)
                {
                    ok++;
                }
            }
        }
        return ok;
    }
}

/// <summary>
/// The jobs of one lease answer: id, lease token and created_at, parsed without building job objects;
/// tokens are copied into one reusable byte arena.
/// </summary>
internal sealed class LeasedJobs(int capacity)
{
    public long[] Ids { get; private set; } = new long[capacity];
    public long[] CreatedTicks { get; private set; } = new long[capacity];
    /// <summary>The payload's "n" (-1 when missing).</summary>
    public long[] Seq { get; private set; } = new long[capacity];
    private int[] _tokenStart = new int[capacity];
    private int[] _tokenLength = new int[capacity];
    private byte[] _tokens = new byte[capacity * 64];
    private int _tokenBytes;

    public int Count { get; private set; }

    public void Parse(ReadOnlySpan<byte> body)
    {
        Count = 0;
        _tokenBytes = 0;
        var reader = new Utf8JsonReader(body);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            throw new BenchException("a lease answer is not a JSON array.");
        }
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            long id = 0, created = 0, seq = -1;
            int tokenStart = 0, tokenLength = -1;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = reader.GetInt64();
                }
                else if (reader.ValueTextEquals("created_at"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && reader.TryGetDateTimeOffset(out var at))
                    {
                        created = at.UtcTicks;
                    }
                }
                else if (reader.ValueTextEquals("payload"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isN = reader.ValueTextEquals("n"u8);
                        reader.Read();
                        if (isN && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n))
                        {
                            seq = n;
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else if (reader.ValueTextEquals("lease"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isToken = reader.ValueTextEquals("token"u8);
                        reader.Read();
                        if (isToken && reader.TokenType == JsonTokenType.String)
                        {
                            EnsureTokenRoom(reader.ValueSpan.Length);
                            tokenStart = _tokenBytes;
                            tokenLength = reader.CopyString(_tokens.AsSpan(_tokenBytes));
                            _tokenBytes += tokenLength;
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            if (tokenLength < 0)
            {
                throw new BenchException($"leased job {id} has no lease.token.");
            }
            Add(id, created, seq, tokenStart, tokenLength);
        }
    }

    /// <summary>Writes <c>{"complete": [{"id", "lease_token"}, …]}</c> for every parsed job.</summary>
    public void WriteAck(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartArray("complete"u8);
        for (var i = 0; i < Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("id"u8, Ids[i]);
            w.WriteString("lease_token"u8, _tokens.AsSpan(_tokenStart[i], _tokenLength[i]));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private void Add(long id, long created, long seq, int tokenStart, int tokenLength)
    {
        if (Count == Ids.Length)
        {
            var size = Count * 2;
            Ids = Resized(Ids, size);
            CreatedTicks = Resized(CreatedTicks, size);
            Seq = Resized(Seq, size);
            _tokenStart = Resized(_tokenStart, size);
            _tokenLength = Resized(_tokenLength, size);
        }
        Ids[Count] = id;
        CreatedTicks[Count] = created;
        Seq[Count] = seq;
        _tokenStart[Count] = tokenStart;
        _tokenLength[Count] = tokenLength;
        Count++;
    }

    private static T[] Resized<T>(T[] a, int size)
    {
        Array.Resize(ref a, size);
        return a;
    }

    private void EnsureTokenRoom(int bytes)
    {
        if (_tokenBytes + bytes > _tokens.Length)
        {
            Array.Resize(ref _tokens, Math.Max(_tokens.Length * 2, _tokenBytes + bytes));
        }
    }
}
