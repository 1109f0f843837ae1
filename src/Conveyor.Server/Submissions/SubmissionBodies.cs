using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Server.Submissions;

internal sealed class SubmitBody
{
    public string? Queue { get; set; }
    public List<ChunkItemBody>? Chunks { get; set; }
    public ChunksRefBody? ChunksRef { get; set; }
    public int? ChunkSize { get; set; }
    public JsonElement? Metadata { get; set; }
    public Dictionary<string, long>? Labels { get; set; }
    public int? MaxChunkRetries { get; set; }
    public CallbackBody? OnComplete { get; set; }
}

/// <summary>One chunk: <c>data</c> (any JSON) or <c>data_base64</c> (bytes), or neither for a chunk without a body.</summary>
internal sealed class ChunkItemBody
{
    public JsonElement? Data { get; set; }
    public string? DataBase64 { get; set; }
}

internal sealed class ChunksRefBody
{
    public string? Prefix { get; set; }
    public long? Count { get; set; }
}

internal sealed class CallbackBody
{
    public string? Queue { get; set; }
    public string? Kind { get; set; }
    public JsonElement? Payload { get; set; }

    /// <summary>Push delivery (docs/delivery.md): the callback job is delivered to this destination, or to these.</summary>
    public JsonElement? Destination { get; set; }
    public JsonElement? Destinations { get; set; }
}

internal sealed class ReserveBody
{
    public string? Queue { get; set; }
    public int? Max { get; set; }
    public long? WaitMs { get; set; }
    public long? LeaseMs { get; set; }
    public string? Strategy { get; set; }
    public string? PreferDistinct { get; set; }
}

/// <summary>complete, fail, heartbeat and release of one chunk share this shape; each route refuses the fields it does not use.</summary>
internal sealed class ChunkActionBody
{
    public long? SubmissionId { get; set; }
    public long? Index { get; set; }
    public string? LeaseToken { get; set; }
    public JsonElement? Result { get; set; }
    public string? ResultBase64 { get; set; }
    public long? Operations { get; set; }
    public string? Error { get; set; }
    public long? ExtendMs { get; set; }
}

/// <summary>A WebSocket message of /v1/consume: <c>type</c> says which, <c>id</c> is the client's correlation, echoed back.</summary>
internal sealed class ConsumeMessage
{
    public string? Type { get; set; }
    public JsonElement? Id { get; set; }
    // reserve
    public string? Queue { get; set; }
    public int? Max { get; set; }
    public long? WaitMs { get; set; }
    public long? LeaseMs { get; set; }
    public string? Strategy { get; set; }
    public string? PreferDistinct { get; set; }
    // complete, fail, heartbeat, release
    public long? SubmissionId { get; set; }
    public long? Index { get; set; }
    public string? LeaseToken { get; set; }
    public JsonElement? Result { get; set; }
    public string? ResultBase64 { get; set; }
    public long? Operations { get; set; }
    public string? Error { get; set; }
    public long? ExtendMs { get; set; }
}

/// <summary>Source-generated readers for the submission bodies; unknown fields are refused so typos do not pass silently.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    ReadCommentHandling = JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(SubmitBody))]
[JsonSerializable(typeof(ChunkItemBody))]
[JsonSerializable(typeof(ReserveBody))]
[JsonSerializable(typeof(ChunkActionBody))]
[JsonSerializable(typeof(ConsumeMessage))]
internal sealed partial class SubmissionBodyJson : JsonSerializerContext;

// The shapes of the answers, for the OpenAPI document only: answers are written by SubmissionJson with a Utf8JsonWriter.

internal sealed record SubmissionResponse(
    long Id, string Queue, string State, long ChunksTotal, long ChunksDone, long ChunksFailed, long ChunksReady, long ChunksReserved,
    long OperationsDone, int ChunkSize, int MaxChunkRetries, JsonElement? Metadata, IReadOnlyDictionary<string, long> Labels,
    string? Prefix, CallbackResponse? OnComplete, FailedChunkResponse? FailedChunk, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt,
    DateTimeOffset? FinishedAt);

internal sealed record CallbackResponse(string Queue, string Kind, JsonElement? Payload, JsonElement? Destinations);

internal sealed record FailedChunkResponse(long Index, string? Error);

internal sealed record SubmissionListResponse(IReadOnlyList<SubmissionResponse> Submissions, string? NextCursor);

internal sealed record BodyRefResponse(string Store, string Key);

internal sealed record ReservedChunkResponse(
    long SubmissionId, long Index, string LeaseToken, int Attempt, DateTimeOffset LeaseExpiresAt, IReadOnlyDictionary<string, long> Labels,
    JsonElement? Data, string? DataBase64, BodyRefResponse? BodyRef, BodyRefResponse? OutputRef);

internal sealed record ReserveResponse(IReadOnlyList<ReservedChunkResponse> Chunks);

internal sealed record ChunkActionResponse(string Outcome, SubmissionResponse Submission);

internal sealed record ChunkResultLine(long Index, JsonElement? Result, string? ResultBase64, BodyRefResponse? ResultRef);
