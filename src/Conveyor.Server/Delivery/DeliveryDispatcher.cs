using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Conveyor.Server.Delivery;

/// <summary>
/// Push delivery: for every push queue, leases jobs like a worker would and delivers each payload to the job's
/// destinations (or the queue's defaults), then completes or fails the job. Everything the job engine gives workers
/// holds here too: retries with backoff up to max_attempts then dead, run_at, per-partition order (the store hands out
/// only the oldest unfinished job of a partition), and across servers on PostgreSQL (SKIP LOCKED leases).
/// A job with several destinations is done when all of them succeeded; which ones did is kept in the job's result,
/// so a retry goes only to the others.
/// </summary>
internal sealed class DeliveryDispatcher(
    IJobStore store, PushQueues queues, HttpDeliverer http, AmqpDeliverer amqp, ServerOptions options, TimeProvider time,
    ILogger<DeliveryDispatcher> logger) : BackgroundService
{
    private const int MaxLeaseBatch = 100;
    private static readonly TimeSpan LeaseWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LeaseMargin = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StoreRetry = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _slots = new(options.DeliveryConcurrency, options.DeliveryConcurrency);
    private readonly ConcurrentDictionary<string, Task> _loops = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, byte> _inFlight = new();
    private readonly RetryPolicy _backoff = new() { Base = options.DeliveryRetryBase, Max = TimeSpan.FromHours(1) };
    private readonly string _worker = $"conveyor-dispatcher@{Environment.MachineName}";
    private CancellationToken _stopping;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        queues.Added += Start;
        try
        {
            // Discovery: push queues made through other servers (PostgreSQL) or before a restart. A store only this
            // process writes (SQLite) learns every change through PushQueues.Observe, so it looks again only rarely.
            using var timer = new PeriodicTimer(options.StoreIsShared ? options.DeliveryDiscoveryInterval : ServerOptions.ExclusiveStoreRecheck, time);
            do
            {
                try
                {
                    await queues.RefreshAsync(stoppingToken);
                    foreach (var queue in queues.Names) Start(queue);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    DeliveryLog.DiscoveryFailed(logger, e);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        finally
        {
            queues.Added -= Start;
            await Task.WhenAll(_loops.Values);
            await Task.WhenAll(_inFlight.Keys);
        }
    }

    private void Start(string queue)
    {
        if (_stopping.IsCancellationRequested || _loops.TryGetValue(queue, out var running) && !running.IsCompleted) return;
        lock (_loops)
        {
            if (_loops.TryGetValue(queue, out running) && !running.IsCompleted) return;
            _loops[queue] = Task.Run(() => RunQueueAsync(queue, _stopping));
        }
    }

    private async Task RunQueueAsync(string queue, CancellationToken stoppingToken)
    {
        var lease = options.DeliveryTimeout + LeaseMargin;
        while (!stoppingToken.IsCancellationRequested && queues.IsPush(queue))
        {
            var taken = 0;
            try
            {
                await _slots.WaitAsync(stoppingToken);
                taken = 1;
                while (taken < MaxLeaseBatch && _slots.Wait(0, CancellationToken.None)) taken++;
                var jobs = await store.JobLeaseAvailableAsync(new LeaseRequest(queue, taken, lease, LeaseWait, _worker), stoppingToken);
                if (jobs.Count < taken) _slots.Release(taken - jobs.Count);
                taken = 0;
                foreach (var job in jobs) Track(DeliverAndAckAsync(job, stoppingToken));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                if (taken > 0) _slots.Release(taken);
                return;
            }
            catch (Exception e)
            {
                if (taken > 0) _slots.Release(taken);
                DeliveryLog.LeaseFailed(logger, queue, e);
                try
                {
                    await Task.Delay(StoreRetry, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void Track(Task delivery)
    {
        _inFlight.TryAdd(delivery, 0);
        _ = delivery.ContinueWith(t => _inFlight.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task DeliverAndAckAsync(Job job, CancellationToken stoppingToken)
    {
        try
        {
            var ack = await DeliverAsync(job, stoppingToken);
            await store.JobAckManyAsync([ack], CancellationToken.None);
            if (ack.Kind == AckKind.Complete && queues.SettingsOf(job.Queue)?.Retention == TimeSpan.Zero)
                await store.JobDeleteAsync(job.Id, CancellationToken.None); // retention 0: delivered jobs are not kept
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping mid-delivery: hand the job back untouched (no attempt counted); it is delivered again later.
            await ReleaseQuietly(job);
        }
        catch (Exception e)
        {
            DeliveryLog.DeliveryCrashed(logger, job.Id, e);
            await ReleaseQuietly(job);
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task ReleaseQuietly(Job job)
    {
        try
        {
            await store.JobAckManyAsync([AckRequest.Release(job.Id, job.Lease?.Token)], CancellationToken.None);
        }
        catch (Exception e)
        {
            // The lease runs out by itself and the job is delivered again then.
            DeliveryLog.ReleaseFailed(logger, job.Id, e);
        }
    }

    /// <summary>Delivers to every destination not yet done and says how the job ends this attempt.</summary>
    internal async Task<AckRequest> DeliverAsync(Job job, CancellationToken stoppingToken)
    {
        var token = job.Lease?.Token;
        var stored = job.DestinationsJson ?? queues.SettingsOf(job.Queue)?.DestinationsJson;
        if (stored is null)
        {
            return AckRequest.Fail(job.Id, token,
                $"Job {job.Id} has no destination and queue '{job.Queue}' has no default destinations: give the job a destination, " +
                $"or set the queue's with PUT /v1/queues/{job.Queue}/settings {{\"destinations\": [...]}}.", dead: true);
        }
        IReadOnlyList<Destination> destinations;
        try
        {
            destinations = Destinations.FromStored(stored);
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException)
        {
            return AckRequest.Fail(job.Id, token, $"The destinations of job {job.Id} cannot be read: {e.Message}", dead: true);
        }
        var done = DeliveryReport.Read(job.ResultJson);
        var pending = destinations.Where(d => !done.ContainsKey(d.Index)).ToList();

        var longest = pending.Count == 0 ? TimeSpan.Zero : pending.Max(d => d.Timeout ?? options.DeliveryTimeout);
        if (token is not null && longest > options.DeliveryTimeout)
            await store.JobHeartbeatAsync(job.Id, token, longest + LeaseMargin, null, stoppingToken);

        var outcomes = await Task.WhenAll(pending.Select(d => DeliverOneAsync(job, d, stoppingToken)));
        var failures = new List<string>();
        var permanent = false;
        var at = time.GetUtcNow();
        for (var i = 0; i < pending.Count; i++)
        {
            var outcome = outcomes[i];
            if (outcome.Ok)
            {
                done[pending[i].Index] = new DeliveryRecord(pending[i].Index, outcome.Status, job.Attempt, at);
                continue;
            }
            failures.Add($"destination {pending[i].Index} ({pending[i].Describe()}): {outcome.Detail}");
            permanent |= outcome.Permanent;
        }
        var report = DeliveryReport.Write(done.Values);
        if (failures.Count == 0) return AckRequest.Complete(job.Id, token, report);
        var error = string.Join("; ", failures);
        if (error.Length > 2000) error = error[..2000] + "…";
        return AckRequest.Fail(job.Id, token, error, retryIn: _backoff.DelayFor(job.Attempt), dead: permanent, resultJson: report);
    }

    private async Task<DeliveryOutcome> DeliverOneAsync(Job job, Destination destination, CancellationToken stoppingToken)
    {
        var timeout = destination.Timeout ?? options.DeliveryTimeout;
        var started = Stopwatch.GetTimestamp();
        var outcome = destination switch
        {
            HttpDestination h => await http.DeliverAsync(job, h, timeout, stoppingToken),
            AmqpDestination a => await amqp.DeliverAsync(job, a, timeout, stoppingToken),
            _ => DeliveryOutcome.Impossible($"unknown destination type {destination.GetType().Name}"),
        };
        ConveyorMetrics.Delivered(job.Queue, destination is HttpDestination ? "http" : "amqp", outcome.Ok, Stopwatch.GetElapsedTime(started).TotalSeconds);
        return outcome;
    }
}

/// <summary>One destination delivered: which, its HTTP status (none for RabbitMQ), in which attempt and when.</summary>
internal sealed record DeliveryRecord(int Destination, int? Status, int Attempt, DateTimeOffset At);

/// <summary>
/// The result of a push job: <c>{"delivered": [{"destination": 0, "status": 200, "attempt": 1, "at": "…"}, …]}</c>.
/// Written on success and on each failure, so retries skip what already succeeded.
/// </summary>
internal static class DeliveryReport
{
    public static Dictionary<int, DeliveryRecord> Read(string? resultJson)
    {
        var done = new Dictionary<int, DeliveryRecord>();
        if (resultJson is null) return done;
        try
        {
            using var doc = JsonDocument.Parse(resultJson);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("delivered", out var delivered) ||
                delivered.ValueKind != JsonValueKind.Array)
                return done;
            foreach (var item in delivered.EnumerateArray())
            {
                if (!item.TryGetProperty("destination", out var index) || !index.TryGetInt32(out var i)) continue;
                int? status = item.TryGetProperty("status", out var s) && s.TryGetInt32(out var st) ? st : null;
                var attempt = item.TryGetProperty("attempt", out var a) && a.TryGetInt32(out var at) ? at : 0;
                var when = item.TryGetProperty("at", out var w) && w.TryGetDateTimeOffset(out var t) ? t : default;
                done[i] = new DeliveryRecord(i, status, attempt, when);
            }
        }
        catch (JsonException)
        {
            // Not a report (a job moved into a push queue with some other result): deliver everything.
        }
        return done;
    }

    public static string Write(IEnumerable<DeliveryRecord> records)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("delivered");
            foreach (var r in records.OrderBy(r => r.Destination))
            {
                w.WriteStartObject();
                w.WriteNumber("destination", r.Destination);
                if (r.Status is { } status) w.WriteNumber("status", status);
                w.WriteNumber("attempt", r.Attempt);
                w.WriteString("at", r.At.UtcDateTime);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}

internal static partial class DeliveryLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Push delivery could not list queues; it tries again at the next tick")]
    public static partial void DiscoveryFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Push delivery could not lease from queue {Queue}; retrying in a second")]
    public static partial void LeaseFailed(ILogger logger, string queue, Exception exception);

    [LoggerMessage(EventId = 302, Level = LogLevel.Error, Message = "Push delivery of job {JobId} failed unexpectedly; the job is handed back")]
    public static partial void DeliveryCrashed(ILogger logger, long jobId, Exception exception);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Could not hand job {JobId} back; its lease will run out")]
    public static partial void ReleaseFailed(ILogger logger, long jobId, Exception exception);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "Push delivery connected to RabbitMQ at {Uri}")]
    public static partial void AmqpConnected(ILogger logger, string uri);
}
