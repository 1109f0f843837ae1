using Conveyor.Client;
using WorkToDo.Core;

namespace WorkToDo.Api;

/// <summary>
/// POST /work commits the row first and enqueues its job second (two systems, no shared transaction). If the API dies or
/// Conveyor is unreachable in between, the work would wait forever; this loop enqueues such works again. The enqueue is
/// idempotent (key = work code), so a work whose job does exist only costs a replayed request.
/// </summary>
internal sealed partial class PendingWorkRequeuer(WorkStore store, WorkQueue queue, ApiSettings settings, ILogger<PendingWorkRequeuer> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.RequeueInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var before = store.Now - (long)settings.RequeueAfter.TotalSeconds;
                foreach (var id in await store.PendingApiWorkAsync(before, 100, stoppingToken))
                {
                    if (await store.GetAsync(id, stoppingToken) is { Done: false } work) await queue.EnqueueAsync(work, stoppingToken);
                }
            }
            catch (Exception e) when (e is ConveyorException or Npgsql.NpgsqlException)
            {
                LogRequeueFailed(logger, e.Message);
            }
        }
    }

    [LoggerMessage(1, LogLevel.Warning, "Could not requeue pending works (next try at the next tick): {Reason}")]
    private static partial void LogRequeueFailed(ILogger logger, string reason);
}
