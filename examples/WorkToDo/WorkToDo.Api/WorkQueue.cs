using Conveyor.Client;
using WorkToDo.Core;

namespace WorkToDo.Api;

/// <summary>Enqueues a work's compute job on Conveyor through the SDK.</summary>
public sealed class WorkQueue(ConveyorClient conveyor, ApiSettings settings)
{
    /// <summary>
    /// The idempotency key is the work code, so enqueuing a work twice (the requeuer after a timeout whose request did
    /// arrive) is a replay of the same job, never a second one.
    /// </summary>
    public async Task<long> EnqueueAsync(Work work, CancellationToken cancellationToken)
    {
        var (job, _) = await conveyor.EnqueueAsync(
            settings.Queue,
            new ComputeWork(work.Id),
            new JobOptions { Kind = WorkNames.ComputeKind, IdempotencyKey = "work:" + work.WorkCode, MaxAttempts = 10 },
            WorkJson.Default.ComputeWork,
            cancellationToken);
        return job.Id;
    }
}
