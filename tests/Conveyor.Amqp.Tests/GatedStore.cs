using Conveyor.Storage.Sqlite;

namespace Conveyor.Amqp.Tests;

/// <summary>A real SQLite store whose inserts wait at a gate the test opens, so a test can look at the broker mid-commit.</summary>
public sealed class GatedStore(string path) : IJobStore
{
    private readonly SqliteJobStore _inner = SqliteJobStore.Open(new SqliteStoreOptions { Path = path });
    private readonly TaskCompletionSource _insertStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the first insert reached the gate.</summary>
    public Task InsertStarted => _insertStarted.Task;

    public int Inserted;

    public async ValueTask<IReadOnlyList<InsertedJob>> JobInsertManyAsync(IReadOnlyList<NewJob> jobs, CancellationToken cancellationToken)
    {
        _insertStarted.TrySetResult();
        await Gate.Task.WaitAsync(cancellationToken);
        var result = await _inner.JobInsertManyAsync(jobs, cancellationToken);
        Interlocked.Add(ref Inserted, jobs.Count);
        return result;
    }

    public ValueTask<IReadOnlyList<Job>> JobLeaseAvailableAsync(LeaseRequest request, CancellationToken cancellationToken) => _inner.JobLeaseAvailableAsync(request, cancellationToken);
    public ValueTask<JobOutcome> JobHeartbeatAsync(long id, string leaseToken, TimeSpan extendBy, string? progressJson, CancellationToken cancellationToken) =>
        _inner.JobHeartbeatAsync(id, leaseToken, extendBy, progressJson, cancellationToken);
    public ValueTask<IReadOnlyList<JobOutcome>> JobAckManyAsync(IReadOnlyList<AckRequest> acks, CancellationToken cancellationToken) => _inner.JobAckManyAsync(acks, cancellationToken);
    public ValueTask<JobOutcome> JobCancelAsync(long id, CancellationToken cancellationToken) => _inner.JobCancelAsync(id, cancellationToken);
    public ValueTask<Job?> JobWaitFinishedAsync(long id, TimeSpan wait, CancellationToken cancellationToken) => _inner.JobWaitFinishedAsync(id, wait, cancellationToken);
    public ValueTask<JobOutcome> JobRetryAsync(long id, CancellationToken cancellationToken) => _inner.JobRetryAsync(id, cancellationToken);
    public ValueTask<Job?> JobGetAsync(long id, CancellationToken cancellationToken) => _inner.JobGetAsync(id, cancellationToken);
    public ValueTask<IReadOnlyList<Job>> JobGetManyAsync(IReadOnlyList<long> ids, CancellationToken cancellationToken) => _inner.JobGetManyAsync(ids, cancellationToken);
    public ValueTask<IReadOnlyList<JobEvent>?> JobEventsAsync(long id, CancellationToken cancellationToken) => _inner.JobEventsAsync(id, cancellationToken);
    public ValueTask<JobPage> JobSearchAsync(JobQuery query, CancellationToken cancellationToken) => _inner.JobSearchAsync(query, cancellationToken);
    public ValueTask<IReadOnlyList<QueueInfo>> QueueListAsync(CancellationToken cancellationToken) => _inner.QueueListAsync(cancellationToken);
    public ValueTask<QueueInfo> QueueSetPausedAsync(string queue, bool paused, CancellationToken cancellationToken) => _inner.QueueSetPausedAsync(queue, paused, cancellationToken);
    public ValueTask<StoreStats> StatsAsync(CancellationToken cancellationToken) => _inner.StatsAsync(cancellationToken);
    public ValueTask<JobOutcome> JobDeleteAsync(long id, CancellationToken cancellationToken) => _inner.JobDeleteAsync(id, cancellationToken);
    public ValueTask<int> JobDeleteFinishedAsync(string queue, DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken) =>
        _inner.JobDeleteFinishedAsync(queue, finishedBefore, limit, cancellationToken);
    public ValueTask<QueueInfo> QueueConfigureAsync(string queue, QueueSettings settings, CancellationToken cancellationToken) =>
        _inner.QueueConfigureAsync(queue, settings, cancellationToken);
    public ValueTask<Schedule> ScheduleUpsertAsync(Schedule schedule, CancellationToken cancellationToken) => _inner.ScheduleUpsertAsync(schedule, cancellationToken);
    public ValueTask<IReadOnlyList<Schedule>> ScheduleListAsync(CancellationToken cancellationToken) => _inner.ScheduleListAsync(cancellationToken);
    public ValueTask<bool> ScheduleDeleteAsync(string name, CancellationToken cancellationToken) => _inner.ScheduleDeleteAsync(name, cancellationToken);
    public ValueTask ScheduleRecordFiredAsync(string name, DateTimeOffset occurrence, CancellationToken cancellationToken) =>
        _inner.ScheduleRecordFiredAsync(name, occurrence, cancellationToken);
    public ValueTask DisposeAsync() => _inner.DisposeAsync();
}
