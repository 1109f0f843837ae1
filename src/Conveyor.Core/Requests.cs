namespace Conveyor;

/// <summary>A validated job to insert. Times are resolved by the caller (no <c>delay_ms</c> here).</summary>
public sealed record NewJob
{
    public required string Queue { get; init; }
    public string Kind { get; init; } = "default";
    public string? PayloadJson { get; init; }
    public int Priority { get; init; }
    /// <summary>When the job may run; null means now.</summary>
    public DateTimeOffset? RunAt { get; init; }
    public int MaxAttempts { get; init; } = JobLimits.DefaultMaxAttempts;
    public string? IdempotencyKey { get; init; }
    public string? PartitionKey { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    public string? TraceParent { get; init; }
    /// <summary>Push delivery: a JSON array of destinations the server's dispatcher delivers the payload to, or null (workers lease it).</summary>
    public string? DestinationsJson { get; init; }
}

/// <summary>Outcome of inserting one job. <see cref="CreatedAt"/> is the insert time (the original job's for a replay: read it back).</summary>
public readonly record struct InsertedJob(long Id, bool Replayed, DateTimeOffset CreatedAt = default);

public static class NewJobExtensions
{
    /// <summary>The job as it was inserted, without reading it back from the store.</summary>
    public static Job AsInserted(this NewJob job, InsertedJob inserted) => new()
    {
        Id = inserted.Id,
        Queue = job.Queue,
        Kind = job.Kind,
        State = JobTransitions.Waiting(job.RunAt ?? inserted.CreatedAt, inserted.CreatedAt),
        PayloadJson = job.PayloadJson,
        Priority = job.Priority,
        RunAt = job.RunAt ?? inserted.CreatedAt,
        MaxAttempts = job.MaxAttempts,
        IdempotencyKey = job.IdempotencyKey,
        PartitionKey = job.PartitionKey,
        Tags = job.Tags,
        TraceParent = job.TraceParent,
        DestinationsJson = job.DestinationsJson,
        CreatedAt = inserted.CreatedAt,
        UpdatedAt = inserted.CreatedAt,
    };
}

public sealed record LeaseRequest(string Queue, int Max, TimeSpan LeaseDuration, TimeSpan Wait, string? Worker);

public enum AckKind
{
    Complete,
    Fail,
    /// <summary>Give a leased job back untouched (a worker shutting down): available again, the attempt not counted.</summary>
    Release,
}

/// <summary>Complete, fail or release one running job. A null token acts on whatever lease is current (admin and compat routes).</summary>
public sealed record AckRequest
{
    public required long Id { get; init; }
    public string? LeaseToken { get; init; }
    public AckKind Kind { get; init; }
    public string? ResultJson { get; init; }
    public string? Error { get; init; }
    public string? Stack { get; init; }
    public TimeSpan? RetryIn { get; init; }
    public bool Dead { get; init; }

    public static AckRequest Complete(long id, string? token, string? resultJson = null) =>
        new() { Id = id, LeaseToken = token, Kind = AckKind.Complete, ResultJson = resultJson };

    /// <summary>A failed attempt. A non-null <paramref name="resultJson"/> replaces the job's result (push delivery records there which destinations already succeeded).</summary>
    public static AckRequest Fail(long id, string? token, string error, string? stack = null, TimeSpan? retryIn = null, bool dead = false, string? resultJson = null) =>
        new() { Id = id, LeaseToken = token, Kind = AckKind.Fail, Error = error, Stack = stack, RetryIn = retryIn, Dead = dead, ResultJson = resultJson };

    public static AckRequest Release(long id, string? token) => new() { Id = id, LeaseToken = token, Kind = AckKind.Release };
}

public enum OutcomeStatus
{
    Ok,
    NotFound,
    /// <summary>The lease token is not the current one (expired, or another worker holds it).</summary>
    StaleLease,
    /// <summary>The job is not in a state that allows the operation.</summary>
    WrongState,
}

/// <summary>An expected result of a job operation: endpoints map it to 200/404/409.</summary>
public readonly record struct JobOutcome(long Id, OutcomeStatus Status, JobState? State, string? Detail)
{
    public bool IsOk => Status == OutcomeStatus.Ok;
    public static JobOutcome Ok(long id, JobState state) => new(id, OutcomeStatus.Ok, state, null);
    public static JobOutcome NotFound(long id) => new(id, OutcomeStatus.NotFound, null, $"Job {id} was not found.");
    public static JobOutcome Stale(long id, JobState state) =>
        new(id, OutcomeStatus.StaleLease, state,
            $"The lease token for job {id} is not current (the job is {state.ToWire()}): the lease expired or another worker holds it.");
    public static JobOutcome Wrong(long id, JobState state, string detail) => new(id, OutcomeStatus.WrongState, state, detail);
}

public sealed record JobQuery
{
    public string? Queue { get; init; }
    public JobState? State { get; init; }
    public string? Kind { get; init; }
    public string? Tag { get; init; }
    /// <summary>Text the payload must contain (case-sensitive). A scan: meant for small stores or narrow filters.</summary>
    public string? Text { get; init; }
    /// <summary>Return jobs with an id lower than this (results are newest first).</summary>
    public long? BeforeId { get; init; }
    public int Limit { get; init; } = 50;
}

public sealed record JobPage(IReadOnlyList<Job> Jobs, long? NextBeforeId);

public sealed record QueueInfo(string Name, bool Paused, StateCounts Counts)
{
    public QueueSettings Settings { get; init; } = QueueSettings.None;
}

/// <summary>Job counts per state.</summary>
public sealed record StateCounts(long Scheduled, long Available, long Running, long Completed, long Dead, long Cancelled)
{
    public static readonly StateCounts Zero = new(0, 0, 0, 0, 0, 0);

    public StateCounts Add(StateCounts other) => new(
        Scheduled + other.Scheduled, Available + other.Available, Running + other.Running,
        Completed + other.Completed, Dead + other.Dead, Cancelled + other.Cancelled);
}

public sealed record StoreStats(IReadOnlyList<QueueInfo> Queues, long EnqueuedSinceStart, long CompletedSinceStart, long FailedSinceStart);

/// <summary>
/// The store cannot be reached or cannot write right now (database down, disk full). Retrying later can help;
/// the server answers 503. Stores translate their provider errors into this at their edge.
/// </summary>
public sealed class StoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Per-queue limits and clean-up, set with <c>PUT /v1/queues/{queue}/settings</c>. Null means no limit / the server default.</summary>
public sealed record QueueSettings
{
    public static readonly QueueSettings None = new();

    /// <summary>Most jobs of this queue running at once, across all workers and servers.</summary>
    public int? MaxRunning { get; init; }

    /// <summary>Most jobs started per second (a token bucket holding up to one second's worth, at least one).</summary>
    public double? RatePerSecond { get; init; }

    /// <summary>How long finished jobs (completed, dead, cancelled) and their history are kept before deletion.</summary>
    public TimeSpan? Retention { get; init; }

    /// <summary>
    /// Push queue: the server's dispatcher delivers its jobs to their destinations and workers cannot lease from it.
    /// Set by itself when the first job with destinations enters a new queue.
    /// </summary>
    public bool Push { get; init; }

    /// <summary>Default destinations (a JSON array) for jobs of a push queue that name none; null for none.</summary>
    public string? DestinationsJson { get; init; }
}

/// <summary>A cron schedule: each occurrence enqueues one job made from <see cref="Template"/> (whose queue is the target).</summary>
public sealed record Schedule
{
    public required string Name { get; init; }
    public required string Cron { get; init; }
    /// <summary>IANA time zone the cron fields are read in.</summary>
    public string TimeZone { get; init; } = "UTC";
    public required NewJob Template { get; init; }
    public bool Paused { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>The occurrence most recently enqueued (its scheduled time, not when it ran).</summary>
    public DateTimeOffset? LastFiredFor { get; init; }
}
