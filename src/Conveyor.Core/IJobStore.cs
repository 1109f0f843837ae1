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

    /// <summary>Deletes a job that is not running, with its history. Running → WrongState (cancel it first).</summary>
    ValueTask<JobOutcome> JobDeleteAsync(long id, CancellationToken cancellationToken);

    /// <summary>Retention: deletes up to <paramref name="limit"/> finished jobs of a queue that finished before the given time.</summary>
    ValueTask<int> JobDeleteFinishedAsync(string queue, DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken);

    /// <summary>Sets a queue's limits and retention (creating the queue if new) and returns it.</summary>
    ValueTask<QueueInfo> QueueConfigureAsync(string queue, QueueSettings settings, CancellationToken cancellationToken);

    /// <summary>Creates or replaces a schedule; an existing one keeps its creation time and last occurrence.</summary>
    ValueTask<Schedule> ScheduleUpsertAsync(Schedule schedule, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<Schedule>> ScheduleListAsync(CancellationToken cancellationToken);

    ValueTask<bool> ScheduleDeleteAsync(string name, CancellationToken cancellationToken);

    /// <summary>Records that the occurrence at <paramref name="occurrence"/> was enqueued; it only ever moves forward.</summary>
    ValueTask ScheduleRecordFiredAsync(string name, DateTimeOffset occurrence, CancellationToken cancellationToken);
}
