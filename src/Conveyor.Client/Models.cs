using System.Text.Json;

namespace Conveyor.Client;

// Wire records for the v1 HTTP API (docs/api.md). Property names map to snake_case through
// ClientJsonContext; payloads and results stay JsonElement so any JSON passes through untouched.

/// <summary>A job as the server reports it.</summary>
public sealed record JobInfo
{
    public long Id { get; init; }
    public string Queue { get; init; } = "";
    public string Kind { get; init; } = "";

    /// <summary>One of <c>scheduled</c>, <c>available</c>, <c>running</c>, <c>completed</c>, <c>dead</c>, <c>cancelled</c>.</summary>
    public string State { get; init; } = "";

    public JsonElement? Payload { get; init; }
    public int Priority { get; init; }
    public DateTimeOffset? RunAt { get; init; }
    public int Attempt { get; init; }
    public int MaxAttempts { get; init; }
    public string? IdempotencyKey { get; init; }
    public string? PartitionKey { get; init; }
    public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>Null unless the job is <c>running</c>.</summary>
    public JobLease? Lease { get; init; }

    public JsonElement? Progress { get; init; }
    public JsonElement? Result { get; init; }
    public IReadOnlyList<JobError>? Errors { get; init; }
    public string? TraceParent { get; init; }

    /// <summary>Push delivery destinations (docs/delivery.md), or null for a job workers lease.</summary>
    public IReadOnlyList<PushDestination>? Destinations { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
}

/// <summary>The exclusive claim a worker holds on a running job.</summary>
public sealed record JobLease
{
    public string Token { get; init; } = "";
    public string? Owner { get; init; }
    public DateTimeOffset ExpiresAt { get; init; }
}

/// <summary>One failed attempt.</summary>
public sealed record JobError
{
    public int Attempt { get; init; }
    public DateTimeOffset At { get; init; }
    public string Message { get; init; } = "";
    public string? Stack { get; init; }
}

/// <summary>One entry of a job's history (<c>GET /v1/jobs/{id}/events</c>).</summary>
public sealed record JobEvent
{
    public DateTimeOffset At { get; init; }
    public string Type { get; init; } = "";
    public string? State { get; init; }
    public int? Attempt { get; init; }
    public string? Message { get; init; }
}

/// <summary>What to enqueue. Every field is optional; the server fills in its defaults.</summary>
public sealed record EnqueueRequest
{
    /// <summary>Free text such as <c>email.send</c>; the server uses <c>default</c> when absent.</summary>
    public string? Kind { get; init; }

    public JsonElement? Payload { get; init; }

    /// <summary>Higher runs first, −1000…1000.</summary>
    public int? Priority { get; init; }

    /// <summary>Earliest start; give this or <see cref="DelayMs"/>, not both.</summary>
    public DateTimeOffset? RunAt { get; init; }

    public long? DelayMs { get; init; }
    public int? MaxAttempts { get; init; }

    /// <summary>A key seen again in the same queue returns the existing job instead of a new one.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Jobs sharing a partition key in a queue run one at a time, in id order.</summary>
    public string? PartitionKey { get; init; }

    public IReadOnlyList<string>? Tags { get; init; }
    public string? TraceParent { get; init; }

    /// <summary>Push delivery: the server delivers the payload to these itself (docs/delivery.md).</summary>
    public IReadOnlyList<PushDestination>? Destinations { get; init; }
}

/// <summary>The answer to a single enqueue.</summary>
/// <param name="Job">The job as stored.</param>
/// <param name="Replayed">True when the idempotency key had been seen before and <paramref name="Job"/> is the existing job.</param>
public sealed record EnqueueResult(JobInfo Job, bool Replayed);

/// <summary>The answer to a batch enqueue, in request order.</summary>
public sealed record BatchEnqueueResult
{
    public int Count { get; init; }
    public IReadOnlyList<BatchEnqueueItem> Jobs { get; init; } = [];
}

public sealed record BatchEnqueueItem
{
    public long Id { get; init; }
    public bool Replayed { get; init; }
}

/// <summary>Many completions, failures and releases in one call (<c>POST /v1/jobs/ack</c>).</summary>
public sealed record AckRequest
{
    public IReadOnlyList<AckComplete>? Complete { get; init; }
    public IReadOnlyList<AckFail>? Fail { get; init; }

    /// <summary>Leased jobs handed back untouched: available again, the attempt not counted.</summary>
    public IReadOnlyList<AckRelease>? Release { get; init; }
}

public sealed record AckRelease
{
    public long Id { get; init; }
    public string LeaseToken { get; init; } = "";
}

public sealed record AckComplete
{
    public long Id { get; init; }
    public string LeaseToken { get; init; } = "";
    public JsonElement? Result { get; init; }
}

public sealed record AckFail
{
    public long Id { get; init; }
    public string LeaseToken { get; init; } = "";
    public string Error { get; init; } = "";
    public string? Stack { get; init; }
    public long? RetryInMs { get; init; }
    public bool? Dead { get; init; }
}

/// <summary>
/// The outcome of one item of an ack: <see cref="Status"/> is 200, 404 or 409. Results come completes first, then
/// fails, then releases, each in request order.
/// </summary>
public sealed record AckItemResult
{
    public long Id { get; init; }
    public int Status { get; init; }
    public string? State { get; init; }
    public string? Detail { get; init; }
}

/// <summary>Filters for <see cref="ConveyorClient.SearchJobsAsync"/>; null means any.</summary>
public sealed record JobSearch
{
    public string? Queue { get; init; }
    public string? State { get; init; }
    public string? Kind { get; init; }
    public string? Tag { get; init; }
}

/// <summary>One page of a job search, newest first.</summary>
public sealed record JobPage
{
    public IReadOnlyList<JobInfo> Jobs { get; init; } = [];

    /// <summary>Pass back as the cursor for the next page; null on the last page.</summary>
    public string? NextCursor { get; init; }
}

/// <summary>Number of jobs in each state.</summary>
public sealed record StateCounts
{
    public long Scheduled { get; init; }
    public long Available { get; init; }
    public long Running { get; init; }
    public long Completed { get; init; }
    public long Dead { get; init; }
    public long Cancelled { get; init; }
}

public sealed record QueueInfo
{
    public string Name { get; init; } = "";

    /// <summary>A paused queue accepts jobs but leases none.</summary>
    public bool Paused { get; init; }

    public StateCounts Counts { get; init; } = new();
}

public sealed record ServerStats
{
    public long UptimeMs { get; init; }
    public int Queues { get; init; }
    public StateCounts Counts { get; init; } = new();

    /// <summary>Jobs enqueued since the server started.</summary>
    public long Enqueued { get; init; }

    /// <summary>Jobs completed since the server started.</summary>
    public long Completed { get; init; }

    /// <summary>Failed attempts since the server started.</summary>
    public long Failed { get; init; }
}

/// <summary>The job each occurrence of a schedule enqueues.</summary>
public sealed record ScheduleJob
{
    public string? Kind { get; init; }
    public JsonElement? Payload { get; init; }
    public int? Priority { get; init; }
    public int? MaxAttempts { get; init; }
    public IReadOnlyList<string>? Tags { get; init; }
}

/// <summary>Body of <c>PUT /v1/schedules/{name}</c>.</summary>
public sealed record ScheduleRequest
{
    /// <summary>5 fields (minute hour day month weekday) or 6 with seconds first, e.g. <c>0 3 * * *</c>.</summary>
    public required string Cron { get; init; }
    public string? TimeZone { get; init; }
    public required string Queue { get; init; }
    public ScheduleJob? Job { get; init; }
    public bool? Paused { get; init; }
}

public sealed record ScheduleInfo
{
    public string Name { get; init; } = "";
    public string Cron { get; init; } = "";
    public string TimeZone { get; init; } = "UTC";
    public string Queue { get; init; } = "";
    public ScheduleJob Job { get; init; } = new();
    public bool Paused { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? LastFiredFor { get; init; }
    public DateTimeOffset? NextRunAt { get; init; }
}
