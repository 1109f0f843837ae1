using System.Text.Json;

namespace Conveyor.Server.Http;

// The shapes of our answers, for the OpenAPI document only: answers are written by JobJson with a Utf8JsonWriter.
// A test compares a real answer's fields with these, so the two cannot drift apart.

internal sealed record JobResponse(
    long Id, string Queue, string Kind, string State, JsonElement? Payload, int Priority, DateTimeOffset RunAt, int Attempt,
    int MaxAttempts, string? IdempotencyKey, string? PartitionKey, IReadOnlyList<string> Tags, LeaseResponse? Lease,
    JsonElement? Progress, JsonElement? Result, IReadOnlyList<JobErrorResponse> Errors, string? TraceParent, JsonElement? Destinations,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt);

internal sealed record LeaseResponse(string Token, string? Owner, DateTimeOffset ExpiresAt);

internal sealed record JobErrorResponse(int Attempt, DateTimeOffset At, string Message, string? Stack);

internal sealed record BatchEnqueueResponse(int Count, IReadOnlyList<BatchEnqueuedJob> Jobs);

internal sealed record BatchEnqueuedJob(long Id, bool Replayed);

internal sealed record AckResponse(IReadOnlyList<AckResult> Results);

internal sealed record AckResult(long Id, int Status, string? State, string? Detail);

internal sealed record JobPageResponse(IReadOnlyList<JobResponse> Jobs, string? NextCursor);

internal sealed record JobEventResponse(DateTimeOffset At, string Type, string State, int Attempt, string? Message);

internal sealed record StateCountsResponse(long Scheduled, long Available, long Running, long Completed, long Dead, long Cancelled);

internal sealed record QueueResponse(string Name, bool Paused, StateCountsResponse Counts, QueueSettingsResponse Settings);

internal sealed record StatsResponse(long UptimeMs, int Queues, StateCountsResponse Counts, long Enqueued, long Completed, long Failed);
