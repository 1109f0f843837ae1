using System.Text;
using System.Text.Json;
using Conveyor.Submissions;

namespace Conveyor.Server.Submissions;

/// <summary>
/// Turns expired chunk reservations into failed attempts: a consumer that vanished without a word. On PostgreSQL it
/// looks every second (other servers reserve chunks too). On SQLite, which only this process writes, it sleeps until
/// the earliest reservation expires (at least a second, at most a minute), woken by a reservation due sooner.
/// </summary>
internal sealed class SubmissionLeaseReaper(
    ISubmissionStore store, ChunkSignal signal, SubmissionCallbackDispatcher callbacks, ServerOptions options, TimeProvider time,
    ILogger<SubmissionLeaseReaper> log) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    // When the loop means to look next (Unix ms); long.MaxValue while it plans, so any reservation made meanwhile wakes it.
    private long _nextLookMs = long.MaxValue;
    private readonly WakeSignal _sooner = new();

    /// <summary>Chunks were reserved until <paramref name="expiresAt"/>: wake the loop if that is before its next look.</summary>
    public void Reserved(DateTimeOffset expiresAt)
    {
        if (expiresAt.ToUnixTimeMilliseconds() < Volatile.Read(ref _nextLookMs)) _sooner.Wake();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var recheck = ServerOptions.ExclusiveStoreRecheck;
        while (!stoppingToken.IsCancellationRequested)
        {
            Volatile.Write(ref _nextLookMs, long.MaxValue);
            _sooner.Arm();
            var wait = Interval;
            try
            {
                using var iteration = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                iteration.CancelAfter(TimeSpan.FromSeconds(30));
                int reclaimed;
                do
                {
                    reclaimed = await store.ReclaimExpiredAsync(iteration.Token);
                    if (reclaimed == 0) continue;
                    signal.Pulse();
                    callbacks.Wake(); // a reclaimed chunk out of attempts may have finished its submission
                } while (reclaimed >= SubmissionLimits.Batch);
                if (!options.StoreIsShared)
                {
                    var next = await store.NextLeaseExpiryAsync(iteration.Token);
                    wait = next is { } at ? WakeSignal.Until(at, time.GetUtcNow(), Interval, recheck) : recheck;
                }
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                SubmissionLog.LoopFailed(log, "lease reaper", e);
            }
            Volatile.Write(ref _nextLookMs, (time.GetUtcNow() + wait).ToUnixTimeMilliseconds());
            await _sooner.SleepAsync(wait, time, stoppingToken);
        }
    }

    internal static async Task<bool> Ticks(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}

/// <summary>Deletes finished submissions (with their chunks) older than <see cref="ServerOptions.MaxSubmissionAge"/>.</summary>
internal sealed class SubmissionRetentionSweeper(ISubmissionStore store, ServerOptions options, TimeProvider time, ILogger<SubmissionRetentionSweeper> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.MaxSubmissionAge is null) return;
        using var timer = new PeriodicTimer(options.SubmissionSweepInterval, time);
        do
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                SubmissionLog.LoopFailed(log, "retention", e);
            }
        } while (await SubmissionLeaseReaper.Ticks(timer, stoppingToken));
    }

    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        if (options.MaxSubmissionAge is not { } age) return 0;
        using var iteration = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        iteration.CancelAfter(TimeSpan.FromMinutes(5));
        var before = time.GetUtcNow() - age;
        int deleted, total = 0;
        // Small batches: each is one short transaction, so reservations never wait long behind a big deletion.
        do
        {
            deleted = await store.DeleteFinishedAsync(before, 100, iteration.Token);
            total += deleted;
        } while (deleted == 100);
        if (total > 0) SubmissionLog.Deleted(log, total, age);
        return total;
    }
}

/// <summary>
/// Enqueues the completion callback of finished submissions as a job, through the job store. At least once: the job is
/// inserted with the idempotency key <c>submission-&lt;id&gt;</c> before the submission records it as done, so a crash
/// in between replays the insert, which the key turns into a no-op.
/// </summary>
internal sealed class SubmissionCallbackDispatcher(
    ISubmissionStore store, IJobStore jobs, Delivery.PushQueues push, ServerOptions options, ILogger<SubmissionCallbackDispatcher> log) : BackgroundService
{
    private readonly SemaphoreSlim _wake = new(0);

    /// <summary>A submission just finished in this process: look now rather than at the next tick.</summary>
    public void Wake()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // Other servers' submissions (PostgreSQL) and failed attempts are picked up by the periodic look. On a store
            // only this process writes (SQLite) every finish wakes it, so with nothing failed it looks again only rarely.
            var next = options.StoreIsShared ? options.SubmissionCallbackInterval : ServerOptions.ExclusiveStoreRecheck;
            try
            {
                await DispatchAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                SubmissionLog.LoopFailed(log, "callback dispatcher", e);
                next = options.SubmissionCallbackInterval;
            }
            try
            {
                await _wake.WaitAsync(next, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task DispatchAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var due = await store.CallbacksDueAsync(100, cancellationToken);
            foreach (var submission in due)
            {
                var callback = submission.OnComplete!;
                var job = new NewJob
                {
                    Queue = callback.Queue,
                    Kind = callback.Kind,
                    PayloadJson = Payload(submission),
                    IdempotencyKey = $"submission-{submission.Id}",
                    DestinationsJson = callback.DestinationsJson,
                };
                // Checked at submit too; again here because the queue may have changed since (or on another server).
                if (job.DestinationsJson is not null && await push.EnsurePushAsync(job.Queue, cancellationToken) is { } notPush)
                    SubmissionLog.CallbackQueueNotPush(log, submission.Id, notPush);
                await jobs.JobInsertManyAsync([job], cancellationToken);
                // At-least-once checkpoint: recorded only after the job is durable.
                await store.CallbackDoneAsync(submission.Id, cancellationToken);
            }
            if (due.Count < 100) return;
        }
    }

    /// <summary>The callback job's payload: the submission as GET /v1/submissions/{id} shows it, and the caller's payload.</summary>
    internal static string Payload(Submission submission)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WritePropertyName("submission");
            SubmissionJson.Write(w, submission);
            w.WritePropertyName("payload");
            if (submission.OnComplete?.PayloadJson is { } payload) w.WriteRawValue(payload, skipInputValidation: true); else w.WriteNullValue();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}

internal static partial class SubmissionLog
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Submission {Loop} failed; it runs again at the next tick.")]
    public static partial void LoopFailed(ILogger logger, string loop, Exception exception);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Retention deleted {Count} finished submissions older than {Age}.")]
    public static partial void Deleted(ILogger logger, int count, TimeSpan age);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "The callback of submission {Id} has destinations but its queue is not a push queue; enqueued as it is. {Reason}")]
    public static partial void CallbackQueueNotPush(ILogger logger, long id, string reason);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "Consumer connection {Owner} closed; released {Count} reserved chunks.")]
    public static partial void Released(ILogger logger, string owner, int count);
}
