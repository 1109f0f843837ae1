using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Client.Internal;

// Request bodies of the submission routes: callers pass plain arguments, the client builds these.

/// <summary>The submission header: the JSON body of a <c>chunks_ref</c> submission, or the first NDJSON line.</summary>
internal sealed record SubmitHeader(
    string Queue,
    int? ChunkSize,
    JsonElement? Metadata,
    IReadOnlyDictionary<string, long>? Labels,
    int? MaxChunkRetries,
    SubmissionCallback? OnComplete,
    ChunksRefBody? ChunksRef);

internal sealed record ChunksRefBody(string Prefix, long Count);

internal sealed record ChunkReserveBody(string Queue, int Max, long WaitMs, long LeaseMs, string? Strategy, string? PreferDistinct);

internal sealed record ChunkReserveAnswer(IReadOnlyList<ReservedChunk> Chunks);

/// <summary>complete, fail, heartbeat and release: each route refuses the others' fields, so unset ones stay out (null).</summary>
internal sealed record ChunkActionBody(
    long SubmissionId,
    long Index,
    string LeaseToken,
    JsonElement? Result = null,
    string? ResultBase64 = null,
    long? Operations = null,
    string? Error = null,
    long? ExtendMs = null);

/// <summary>A message to <c>/v1/consume</c>; fields of other types stay null and are left out.</summary>
internal sealed record ConsumeRequest(
    string Type,
    long Id,
    string? Queue = null,
    int? Max = null,
    long? WaitMs = null,
    long? LeaseMs = null,
    string? Strategy = null,
    string? PreferDistinct = null,
    long? SubmissionId = null,
    long? Index = null,
    string? LeaseToken = null,
    JsonElement? Result = null,
    string? ResultBase64 = null,
    long? Operations = null,
    string? Error = null,
    long? ExtendMs = null);

/// <summary>Any message from <c>/v1/consume</c>: <c>chunks</c>, <c>ack</c>, <c>error</c>, <c>ping</c> or <c>pong</c>.</summary>
internal sealed record ConsumeAnswer(
    string Type,
    JsonElement? Id,
    IReadOnlyList<ReservedChunk>? Chunks,
    string? Outcome,
    SubmissionInfo? Submission,
    int? Status,
    string? Title,
    string? Detail);

// Source-generated like ClientJsonContext (no reflection, trims cleanly); a context of its own so the submission
// wire types stay in this folder.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SubmitHeader))]
[JsonSerializable(typeof(SubmissionInfo))]
[JsonSerializable(typeof(SubmissionPage))]
[JsonSerializable(typeof(ChunkResult))]
[JsonSerializable(typeof(ChunkReserveBody))]
[JsonSerializable(typeof(ChunkReserveAnswer))]
[JsonSerializable(typeof(ChunkActionBody))]
[JsonSerializable(typeof(ChunkActionResult))]
[JsonSerializable(typeof(ConsumeRequest))]
[JsonSerializable(typeof(ConsumeAnswer))]
internal sealed partial class SubmissionJsonContext : JsonSerializerContext;
