namespace Conveyor.Storage.Sqlite;

/// <summary>
/// One request to the writer loop. <see cref="Apply"/> runs inside the group transaction; <see cref="AfterCommit"/>
/// runs under the live-index gate once the transaction is durable; only then is the caller answered.
/// </summary>
internal abstract class WriteOp
{
    public abstract void Apply(SqliteWriter writer, long nowMs);

    public virtual void AfterCommit(LiveIndex index, long nowMs) { }

    /// <summary>The transaction failed: undo any in-memory claim made before the op was queued.</summary>
    public virtual void AfterRollback(LiveIndex index) { }

    public abstract void Answer();

    public abstract void Fail(Exception error);
}

internal abstract class WriteOp<T> : WriteOp
{
    private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<T> Task => _done.Task;

    protected abstract T Result { get; }

    public override void Answer() => _done.TrySetResult(Result);

    public override void Fail(Exception error) => _done.TrySetException(error);
}

internal sealed class InsertOp(IReadOnlyList<NewJob> jobs) : WriteOp<IReadOnlyList<InsertedJob>>
{
    private readonly InsertedJob[] _results = new InsertedJob[jobs.Count];
    private readonly long[] _runAtMs = new long[jobs.Count];

    protected override IReadOnlyList<InsertedJob> Result => _results;

    public override void Apply(SqliteWriter writer, long nowMs)
    {
        for (var i = 0; i < jobs.Count; i++)
        {
            var job = jobs[i];
            writer.EnsureQueue(job.Queue, nowMs);
            // An idempotency key seen before in this queue (this transaction included) returns the existing job.
            if (job.IdempotencyKey is { } key && writer.FindIdempotent(job.Queue, key) is { } existing)
            {
                _results[i] = new InsertedJob(existing, Replayed: true);
                continue;
            }
            var runAtMs = job.RunAt is { } at ? at.ToUnixTimeMilliseconds() : nowMs;
            _runAtMs[i] = runAtMs;
            _results[i] = new InsertedJob(writer.InsertJob(job, runAtMs, nowMs), Replayed: false, RowMapper.FromMs(nowMs));
        }
    }

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        for (var i = 0; i < jobs.Count; i++)
        {
            if (_results[i].Replayed) continue;
            var job = jobs[i];
            index.Enqueued++;
            index.Add(new LiveJob(_results[i].Id, index.Queue(job.Queue), index.Intern(job.Kind), job.Priority, _runAtMs[i], 0, job.MaxAttempts, job.PartitionKey), nowMs);
            ConveyorMetrics.JobEnqueued(job.Queue, job.Kind);
        }
    }
}

/// <summary>A complete or fail whose lease was checked and claimed (<see cref="LiveJob.Settling"/>) before queueing.</summary>
internal readonly record struct ClaimedAck(AckRequest Request, LiveJob Job, int Attempt, long StartedMs);

internal sealed class AckOp(IReadOnlyList<ClaimedAck> acks, RetryPolicy policy) : WriteOp<JobOutcome[]>
{
    private readonly JobOutcome[] _results = new JobOutcome[acks.Count];
    private readonly long[] _runAtMs = new long[acks.Count];

    protected override JobOutcome[] Result => _results;

    public override void Apply(SqliteWriter writer, long nowMs)
    {
        var now = RowMapper.FromMs(nowMs);
        for (var i = 0; i < acks.Count; i++)
        {
            var (request, job, attempt, startedMs) = acks[i];
            if (request.Kind == AckKind.Complete)
            {
                writer.Complete(job.Id, attempt, request.ResultJson, startedMs, nowMs);
                _results[i] = JobOutcome.Ok(job.Id, JobState.Completed);
                continue;
            }
            var message = request.Error ?? "failed";
            var error = RowMapper.ErrorEntry(attempt, nowMs, message, request.Stack);
            var decision = JobTransitions.OnFail(attempt, job.MaxAttempts, request.Dead, request.RetryIn, now, policy);
            writer.Event(job.Id, startedMs, JobEventTypes.Started, JobState.Running, attempt, null);
            if (decision.NextState == JobState.Dead)
            {
                writer.Dead(job.Id, attempt, error, request.ResultJson, startedMs, nowMs);
                writer.Event(job.Id, nowMs, JobEventTypes.Failed, JobState.Dead, attempt, message);
                _results[i] = JobOutcome.Ok(job.Id, JobState.Dead);
            }
            else
            {
                var runAtMs = decision.RunAt!.Value.ToUnixTimeMilliseconds();
                _runAtMs[i] = runAtMs;
                writer.RetryLater(job.Id, attempt, runAtMs, error, request.ResultJson, startedMs, nowMs);
                var next = JobTransitions.Waiting(decision.RunAt.Value, now);
                writer.Event(job.Id, nowMs, JobEventTypes.Failed, next, attempt, message);
                _results[i] = JobOutcome.Ok(job.Id, next);
            }
        }
    }

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        for (var i = 0; i < acks.Count; i++)
        {
            var job = acks[i].Job;
            var state = _results[i].State!.Value;
            ConveyorMetrics.JobFinishedAttempt(job.Queue.Name, job.Kind, state, (nowMs - acks[i].StartedMs) / 1000.0);
            if (state == JobState.Completed) index.Completed++;
            else index.Failed++;
            if (state is JobState.Scheduled or JobState.Available) index.Reschedule(job, _runAtMs[i], nowMs);
            else index.Finish(job, state);
        }
    }

    public override void AfterRollback(LiveIndex index)
    {
        foreach (var ack in acks) index.Unsettle(ack.Job);
    }
}

internal sealed class CancelOp(LiveJob job, int attempt) : WriteOp<JobOutcome>
{
    protected override JobOutcome Result => JobOutcome.Ok(job.Id, JobState.Cancelled);

    public override void Apply(SqliteWriter writer, long nowMs)
    {
        writer.Cancel(job.Id, attempt, nowMs);
        writer.Event(job.Id, nowMs, JobEventTypes.Cancelled, JobState.Cancelled, attempt, null);
    }

    public override void AfterCommit(LiveIndex index, long nowMs) => index.Finish(job, JobState.Cancelled);

    public override void AfterRollback(LiveIndex index) => index.Unsettle(job);
}

/// <summary>Manual retry of a finished job; the state check happens here, in the writer, so two retries cannot both win.</summary>
internal sealed class RetryOp(long id) : WriteOp<JobOutcome>
{
    private JobOutcome _result;
    private SqliteWriter.RetryCandidate _row;

    protected override JobOutcome Result => _result;

    public override void Apply(SqliteWriter writer, long nowMs)
    {
        if (writer.ReadForRetry(id) is not { } row)
        {
            _result = JobOutcome.NotFound(id);
            return;
        }
        var state = row.StoredState == JobsTable.Waiting ? JobState.Available : (JobState)row.StoredState;
        if (!JobTransitions.CanRetryManually(state))
        {
            _result = JobOutcome.Wrong(id, state, $"Job {id} is {state.ToWire()}; only dead or cancelled jobs can be retried.");
            return;
        }
        _row = row;
        writer.Requeue(id, nowMs);
        writer.Event(id, nowMs, JobEventTypes.Retried, JobState.Available, 0, $"retried by hand after it was {state.ToWire()}");
        _result = JobOutcome.Ok(id, JobState.Available);
    }

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        if (!_result.IsOk) return;
        var queue = index.Queue(_row.Queue);
        queue.Adjust((JobState)_row.StoredState, -1);
        index.Add(new LiveJob(id, queue, index.Intern(_row.Kind), _row.Priority, nowMs, 0, _row.MaxAttempts, _row.PartitionKey), nowMs);
    }
}

/// <summary>Records leases that expired: the attempt counts; with none left the job is dead.</summary>
internal sealed class ExpireOp(IReadOnlyList<(LiveJob Job, int Attempt, long StartedMs, bool Dead)> expired) : WriteOp<bool>
{
    protected override bool Result => true;

    public override void Apply(SqliteWriter writer, long nowMs)
    {
        foreach (var (job, attempt, startedMs, dead) in expired)
        {
            writer.Event(job.Id, startedMs, JobEventTypes.Started, JobState.Running, attempt, null);
            if (dead)
            {
                writer.Dead(job.Id, attempt, RowMapper.ErrorEntry(attempt, nowMs, "lease expired", null), null, startedMs, nowMs);
                writer.Event(job.Id, nowMs, JobEventTypes.LeaseExpired, JobState.Dead, attempt, "lease expired with no attempts left");
            }
            else
            {
                writer.UpdateAttempt(job.Id, attempt, startedMs, nowMs);
                writer.Event(job.Id, nowMs, JobEventTypes.LeaseExpired, JobState.Available, attempt, "lease expired without a heartbeat");
            }
        }
    }

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        foreach (var (job, _, _, dead) in expired)
        {
            if (!dead) continue;
            ConveyorMetrics.JobDead(job.Queue.Name, job.Kind);
            index.Finish(job, JobState.Dead);
        }
    }

    public override void AfterRollback(LiveIndex index)
    {
        foreach (var (job, _, _, dead) in expired)
        {
            if (dead) index.Unsettle(job);
        }
    }
}

internal sealed class PauseOp(string queue, bool paused) : WriteOp<bool>
{
    protected override bool Result => paused;

    public override void Apply(SqliteWriter writer, long nowMs) => writer.SetPaused(queue, paused, nowMs);

    public override void AfterCommit(LiveIndex index, long nowMs) => index.SetPaused(index.Queue(queue), paused);
}

/// <summary>Deletes one job that is not running, with its history.</summary>
internal sealed class DeleteOp(long id, LiveJob? live) : WriteOp<JobOutcome>
{
    private JobOutcome _result;
    private (string Queue, int State)? _deleted;

    protected override JobOutcome Result => _result;

    public override void Apply(SqliteWriter writer, long nowMs)
    {
        // A job that was finished when we looked may have been retried since: only delete it if it still is.
        _deleted = writer.DeleteJob(id, onlyFinished: live is null);
        if (_deleted is null)
        {
            _result = writer.JobExists(id)
                ? JobOutcome.Wrong(id, JobState.Available, $"Job {id} changed while it was being deleted; try again.")
                : JobOutcome.NotFound(id);
            return;
        }
        _result = JobOutcome.Ok(id, live?.State ?? (JobState)_deleted.Value.State);
    }

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        if (_deleted is not { } deleted) return;
        if (live is not null) index.Remove(live);
        else index.Queue(deleted.Queue).Adjust((JobState)deleted.State, -1);
    }

    public override void AfterRollback(LiveIndex index)
    {
        if (live is not null) index.Unsettle(live);
    }
}

/// <summary>Retention: deletes the oldest finished jobs of a queue up to a limit.</summary>
internal sealed class DeleteFinishedOp(string queue, long finishedBeforeMs, int limit) : WriteOp<int>
{
    private IReadOnlyList<int> _states = [];

    protected override int Result => _states.Count;

    public override void Apply(SqliteWriter writer, long nowMs) => _states = writer.DeleteFinished(queue, finishedBeforeMs, limit);

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        var line = index.Queue(queue);
        foreach (var state in _states) line.Adjust((JobState)state, -1);
    }
}

internal sealed class ConfigureOp(string queue, QueueSettings settings) : WriteOp<bool>
{
    protected override bool Result => true;

    public override void Apply(SqliteWriter writer, long nowMs) => writer.Configure(queue, settings, nowMs);

    public override void AfterCommit(LiveIndex index, long nowMs)
    {
        var line = index.Queue(queue);
        line.Settings = settings;
        line.Signal();
        index.SettingsChanged(line, nowMs);
    }
}

/// <summary>Schedule writes: small, rare, and ordered with everything else through the writer.</summary>
internal sealed class ScheduleOp<T>(Func<SqliteWriter, long, T> apply) : WriteOp<T>
{
    private T _result = default!;

    protected override T Result => _result;

    public override void Apply(SqliteWriter writer, long nowMs) => _result = apply(writer, nowMs);
}
