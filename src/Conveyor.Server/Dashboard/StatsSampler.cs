namespace Conveyor.Server.Dashboard;

/// <summary>
/// Samples <see cref="IJobStore.StatsAsync"/> once a second into <see cref="StatsHistory"/>, so the dashboard's
/// throughput chart has the last 15 minutes even on a fresh page load. The store's counters count since the server
/// started; a sample keeps the difference from the previous one. Only this process's traffic is counted (with a
/// shared PostgreSQL store each server samples its own).
/// </summary>
internal sealed partial class StatsSampler(IJobStore store, StatsHistory history, TimeProvider time, ILogger<StatsSampler> logger)
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>A store that takes longer than this for its counters skips a sample rather than piling up ticks.</summary>
    private static readonly TimeSpan SampleTimeout = TimeSpan.FromSeconds(5);

    private long _enqueued, _completed, _failed;

    /// <summary>Runs until <paramref name="stop"/> is cancelled (the application stopping), then returns after the current sample.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
                timeout.CancelAfter(SampleTimeout);
                try
                {
                    await SampleOnceAsync(timeout.Token);
                }
                catch (Exception e) when (e is StoreUnavailableException or TimeoutException
                                              || (e is OperationCanceledException && !stop.IsCancellationRequested))
                {
                    // A missed second shows as a gap in the chart; the next sample carries the difference.
                    LogSampleFailed(logger, e.Message);
                }
            }
        }
        catch (Exception) when (stop.IsCancellationRequested)
        {
            // Shutting down: the last sample may have been cut short (or met a store already closing); nothing is lost.
        }
    }

    internal async Task SampleOnceAsync(CancellationToken cancellationToken)
    {
        var stats = await store.StatsAsync(cancellationToken);
        var totals = stats.Queues.Aggregate(StateCounts.Zero, (sum, q) => sum.Add(q.Counts));
        history.Add(new StatsSample(
            time.GetUtcNow(),
            Delta(ref _enqueued, stats.EnqueuedSinceStart),
            Delta(ref _completed, stats.CompletedSinceStart),
            Delta(ref _failed, stats.FailedSinceStart),
            totals.Scheduled, totals.Available, totals.Running, totals.Dead));
    }

    /// <summary>The increase since the last sample; a counter that went down (a store that restarted its count) counts from zero.</summary>
    private static long Delta(ref long previous, long current)
    {
        var delta = current >= previous ? current - previous : current;
        previous = current;
        return delta;
    }

    [LoggerMessage(EventId = 900, Level = LogLevel.Debug, Message = "Stats sample skipped: {Reason}")]
    private static partial void LogSampleFailed(ILogger logger, string reason);
}
