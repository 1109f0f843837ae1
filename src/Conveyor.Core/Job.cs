namespace Conveyor;

/// <summary>A job as readers see it: the stored row with the live lease laid over it.</summary>
public sealed class Job
{
    public required long Id { get; init; }
    public required string Queue { get; init; }
    public required string Kind { get; init; }
    public required JobState State { get; init; }
    /// <summary>The payload as raw JSON text, or null.</summary>
    public string? PayloadJson { get; init; }
    public int Priority { get; init; }
    public required DateTimeOffset RunAt { get; init; }
    public int Attempt { get; init; }
    public int MaxAttempts { get; init; }
    public string? IdempotencyKey { get; init; }
    public string? PartitionKey { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    public JobLease? Lease { get; init; }
    public string? ProgressJson { get; init; }
    public string? ResultJson { get; init; }
    /// <summary>The errors of failed attempts as a raw JSON array, oldest first, or null.</summary>
    public string? ErrorsJson { get; init; }
    public string? TraceParent { get; init; }
    /// <summary>Push delivery destinations as a raw JSON array, or null.</summary>
    public string? DestinationsJson { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
}

/// <summary>The exclusive claim a worker holds on a running job.</summary>
public sealed record JobLease(string Token, string? Owner, DateTimeOffset ExpiresAt);

/// <summary>One entry of a job's history (<c>GET /v1/jobs/{id}/events</c>).</summary>
public sealed record JobEvent(DateTimeOffset At, string Type, JobState State, int Attempt, string? Message);

/// <summary>Event types written to a job's history.</summary>
public static class JobEventTypes
{
    public const string Created = "created";
    public const string Started = "started";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string LeaseExpired = "lease_expired";
    public const string Cancelled = "cancelled";
    public const string Retried = "retried";
}
