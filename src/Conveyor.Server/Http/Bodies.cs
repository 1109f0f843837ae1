using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Server.Http;

internal sealed class EnqueueBody
{
    public string? Kind { get; set; }
    public JsonElement? Payload { get; set; }
    public int? Priority { get; set; }
    public DateTimeOffset? RunAt { get; set; }
    public long? DelayMs { get; set; }
    public int? MaxAttempts { get; set; }
    public string? IdempotencyKey { get; set; }
    public string? PartitionKey { get; set; }
    public List<string>? Tags { get; set; }
    public string? TraceParent { get; set; }
    /// <summary>Push delivery: one destination object, or <see cref="Destinations"/> for several (docs/delivery.md).</summary>
    public JsonElement? Destination { get; set; }
    public JsonElement? Destinations { get; set; }
}

internal sealed class LeaseBody
{
    public int? Max { get; set; }
    public long? LeaseMs { get; set; }
    public long? WaitMs { get; set; }
    public string? Worker { get; set; }
}

internal sealed class HeartbeatBody
{
    public string? LeaseToken { get; set; }
    public long? ExtendMs { get; set; }
    public JsonElement? Progress { get; set; }
}

internal sealed class CompleteBody
{
    public long? Id { get; set; }
    public string? LeaseToken { get; set; }
    public JsonElement? Result { get; set; }
}

internal sealed class FailBody
{
    public long? Id { get; set; }
    public string? LeaseToken { get; set; }
    public string? Error { get; set; }
    public string? Stack { get; set; }
    public long? RetryInMs { get; set; }
    public bool? Dead { get; set; }
}

internal sealed class AckBody
{
    public List<CompleteBody>? Complete { get; set; }
    public List<FailBody>? Fail { get; set; }
    public List<CompleteBody>? Release { get; set; }
}

internal sealed class CompatEnqueueBody
{
    [JsonPropertyName("Type")]
    public string? Type { get; set; }
}

internal sealed class CompatCancelBody
{
    [JsonPropertyName("ID")]
    public long? Id { get; set; }
}

/// <summary>Source-generated (de)serializers for every request body; unknown fields are refused so typos do not pass silently.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    ReadCommentHandling = JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(EnqueueBody))]
[JsonSerializable(typeof(List<EnqueueBody>))]
[JsonSerializable(typeof(LeaseBody))]
[JsonSerializable(typeof(HeartbeatBody))]
[JsonSerializable(typeof(CompleteBody))]
[JsonSerializable(typeof(FailBody))]
[JsonSerializable(typeof(AckBody))]
[JsonSerializable(typeof(CompatEnqueueBody))]
[JsonSerializable(typeof(CompatCancelBody))]
[JsonSerializable(typeof(QueueSettingsBody))]
[JsonSerializable(typeof(ScheduleBody))]
internal sealed partial class BodyJson : JsonSerializerContext;
