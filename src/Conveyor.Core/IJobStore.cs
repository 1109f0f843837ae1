namespace Conveyor;

/// <summary>
/// The store seam: job operations, each taking a small request. Both stores pass one contract suite.
/// Expected outcomes come back as <see cref="JobOutcome"/>; exceptions mean bugs or infrastructure failures.
/// </summary>
public interface IJobStore : IAsyncDisposable
{
    /// <summary>Inserts jobs durably: when the task completes, they survive a crash. Results are in request order.</summary>
    ValueTask<IReadOnlyList<InsertedJob>> JobInsertManyAsync(IReadOnlyList<NewJob> jobs, CancellationToken cancellationToken);

    /// <summary>Leases up to <c>Max</c> available jobs, waiting up to <c>Wait</c> for one to appear.</summary>
    ValueTask<IReadOnlyList<Job>> JobLeaseAvailableAsync(LeaseRequest request, CancellationToken cancellationToken);

    ValueTask<JobOutcome> JobHeartbeatAsync(long id, string leaseToken, TimeSpan extendBy, string? progressJson, CancellationToken cancellationToken);

    /// <summary>Completes, fails or releases jobs (completes and fails durably). Results are in request order.</summary>
    ValueTask<IReadOnlyList<JobOutcome>> JobAckManyAsync(IReadOnlyList<AckRequest> acks, CancellationToken cancellationToken);

    ValueTask<JobOutcome> JobCancelAsync(long id, CancellationToken cancellationToken);

    /// <summary>
    /// Waits up to <paramref name="wait"/> for the job to finish (completed, dead or cancelled) and returns it as it is then;
    /// null when there is no such job. The RPC route <c>GET /v1/jobs/{id}/result?wait_ms=</c> stands on this.
    /// </summary>
    ValueTask<Job?> JobWaitFinishedAsync(long id, TimeSpan wait, CancellationToken cancellationToken);

    /// <summary>Makes a dead or cancelled job available again with its attempts reset.</summary>
    ValueTask<JobOutcome> JobRetryAsync(long id, CancellationToken cancellationToken);

    ValueTask<Job?> JobGetAsync(long id, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<Job>> JobGetManyAsync(IReadOnlyList<long> ids, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<JobEvent>?> JobEventsAsync(long id, CancellationToken cancellationToken);

    ValueTask<JobPage> JobSearchAsync(JobQuery query, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<QueueInfo>> QueueListAsync(CancellationToken cancellationToken);

    /// <summary>Pauses or resumes a queue (creating it if new) and returns it.</summary>
    ValueTask<QueueInfo> QueueSetPausedAsync(string queue, bool paused, CancellationToken cancellationToken);

    ValueTask<StoreStats> StatsAsync(CancellationToken cancellationToken);
}
