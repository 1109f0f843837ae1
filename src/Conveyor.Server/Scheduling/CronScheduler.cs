using Conveyor.Scheduling;

namespace Conveyor.Server.Scheduling;

/// <summary>
/// Enqueues cron occurrences. Each occurrence is enqueued with the idempotency key <c>schedule:{name}:{unix ms}</c>,
/// so it exists once however many servers run this loop and however often it restarts; the schedule's
/// <c>last_fired_for</c> then moves past it. Missed occurrences (server down) are caught up once: only the latest
/// one that is due is enqueued, never a burst of the backlog.
/// </summary>
public sealed class CronScheduler(IJobStore store, TimeProvider time, ServerOptions options, ILogger<CronScheduler> logger) : BackgroundService
{
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly WakeSignal _changed = new();

    /// <summary>A schedule was created, replaced or deleted through this server: plan the next wake-up again now.</summary>
    public void Wake() => _changed.Wake();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Sleeps until the next occurrence of any schedule rather than ticking: an idle server has no wake-up to pay for.
        // On a shared store (PostgreSQL) other servers may change schedules, so it looks at least every SchedulerInterval.
        var recheck = options.StoreIsShared ? options.SchedulerInterval : ServerOptions.ExclusiveStoreRecheck;
        while (!stoppingToken.IsCancellationRequested)
        {
            _changed.Arm();
            var wait = recheck;
            try
            {
                var (_, next) = await RunAsync(stoppingToken);
                if (next is { } at) wait = WakeSignal.Until(at, time.GetUtcNow(), TimeSpan.Zero, recheck);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.SchedulerFailed(logger, e);
                wait = options.SchedulerInterval;
            }
            await _changed.SleepAsync(wait, time, stoppingToken);
        }
    }

    /// <summary>Enqueues every schedule's due occurrence once. The loop calls this each time it wakes; tests call it directly.</summary>
    public async Task<int> RunOnceAsync(CancellationToken cancellationToken = default) => (await RunAsync(cancellationToken)).Fired;

    /// <summary>Enqueues the due occurrences and returns how many, with the earliest occurrence still to come (null: none).</summary>
    private async Task<(int Fired, DateTimeOffset? Next)> RunAsync(CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            var now = time.GetUtcNow();
            var fired = 0;
            DateTimeOffset? earliest = null;
            foreach (var schedule in await store.ScheduleListAsync(cancellationToken))
            {
                if (schedule.Paused) continue;
                if (LatestDue(schedule, now) is { } occurrence)
                {
                    var job = schedule.Template with
                    {
                        IdempotencyKey = $"schedule:{schedule.Name}:{occurrence.ToUnixTimeMilliseconds()}",
                        Tags = [.. schedule.Template.Tags, $"schedule:{schedule.Name}"],
                    };
                    var inserted = await store.JobInsertManyAsync([job], cancellationToken);
                    await store.ScheduleRecordFiredAsync(schedule.Name, occurrence, cancellationToken);
                    if (!inserted[0].Replayed) fired++;
                }
                if (NextRun(schedule, now) is { } next && (earliest is null || next < earliest)) earliest = next;
            }
            return (fired, earliest);
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>The latest occurrence after the last fired one (or the schedule's creation) that is due by now.</summary>
    public static DateTimeOffset? LatestDue(Schedule schedule, DateTimeOffset now)
    {
        if (!CronExpression.TryParse(schedule.Cron, out var cron, out _) || !TryZone(schedule.TimeZone, out var zone)) return null;
        var from = schedule.LastFiredFor ?? schedule.CreatedAt;
        var (due, reachedNow) = Walk(cron, zone, from, now);
        if (reachedNow) return due;
        // More occurrences were missed than one walk takes (a long outage of a per-second schedule): the newest is the
        // one to fire, so look back from now over windows 32 times longer each until one holds an occurrence. A schedule
        // that dense finds it in the first minute's window; one dense only at times (every second of one month) may
        // take a window whose walk stops short of now, and then fires an older occurrence, never one older than before.
        for (var back = TimeSpan.FromMinutes(1); now - back > from; back *= 32)
        {
            var (newest, _) = Walk(cron, zone, now - back, now);
            if (newest is not null) return newest;
        }
        return due;
    }

    /// <summary>The last occurrence after <paramref name="from"/> due by <paramref name="now"/>, within a bounded walk; whether it got there.</summary>
    private static (DateTimeOffset? Due, bool ReachedNow) Walk(CronExpression cron, TimeZoneInfo zone, DateTimeOffset from, DateTimeOffset now)
    {
        DateTimeOffset? due = null;
        for (var i = 0; i < 100_000; i++)
        {
            var next = cron.NextAfter(from, zone);
            if (next is null || next > now) return (due, true);
            due = from = next.Value;
        }
        return (due, false);
    }

    public static DateTimeOffset? NextRun(Schedule schedule, DateTimeOffset now) =>
        CronExpression.TryParse(schedule.Cron, out var cron, out _) && TryZone(schedule.TimeZone, out var zone)
            ? cron.NextAfter(schedule.LastFiredFor is { } last && last > now ? last : now, zone)
            : null;

    public static bool TryZone(string id, out TimeZoneInfo zone)
    {
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(id);
            return true;
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            zone = TimeZoneInfo.Utc;
            return false;
        }
    }
}

/// <summary>Deletes finished jobs older than their queue's retention (or the server default) in batches.</summary>
public sealed class RetentionSweeper(IJobStore store, TimeProvider time, ServerOptions options, ILogger<RetentionSweeper> logger) : BackgroundService
{
    private const int Batch = 1000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.RetentionInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.RetentionFailed(logger, e);
            }
        }
    }

    /// <summary>One sweep over every queue; returns how many jobs were deleted.</summary>
    public async Task<int> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        var deleted = 0;
        var now = time.GetUtcNow();
        foreach (var queue in await store.QueueListAsync(cancellationToken))
        {
            var keep = queue.Settings.Retention ?? options.Retention;
            // Zero deletes every finished job at each sweep (a push queue's dispatcher deletes delivered jobs itself at once).
            if (keep is not { } age || age < TimeSpan.Zero) continue;
            int removed;
            do
            {
                removed = await store.JobDeleteFinishedAsync(queue.Name, now - age, Batch, cancellationToken);
                deleted += removed;
            } while (removed == Batch && !cancellationToken.IsCancellationRequested);
        }
        return deleted;
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "The cron scheduler failed; it tries again at the next tick")]
    public static partial void SchedulerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "The retention sweep failed; it tries again at the next tick")]
    public static partial void RetentionFailed(ILogger logger, Exception exception);
}
