using System.Text.Json;

namespace Conveyor.Client.Internal;

// Request bodies that callers never build themselves: the client methods take plain arguments.

internal sealed record LeaseBody(int Max, int LeaseMs, int WaitMs, string? Worker);

internal sealed record HeartbeatBody(string LeaseToken, int? ExtendMs, JsonElement? Progress);

internal sealed record CompleteBody(string LeaseToken, JsonElement? Result);

internal sealed record FailBody(string LeaseToken, string Error, string? Stack, long? RetryInMs, bool? Dead);

internal sealed record ReleaseBody(string LeaseToken);

internal sealed record AckResponse(IReadOnlyList<AckItemResult> Results);

/// <summary>RFC 9457 problem details, as every 4xx/5xx answer carries.</summary>
internal sealed record ProblemBody(string? Type, string? Title, int? Status, string? Detail, string? State = null);
