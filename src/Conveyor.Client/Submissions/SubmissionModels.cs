using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Client;

// Wire records of the submission routes (docs/submissions.md). Property names map to snake_case through
// SubmissionJsonContext; chunk data, results and metadata stay JsonElement so any JSON passes through untouched.

/// <summary>A submission as the server reports it (<c>GET /v1/submissions/{id}</c>).</summary>
public sealed record SubmissionInfo
{
    public long Id { get; init; }
    public string Queue { get; init; } = "";

    /// <summary><c>in_progress</c>, then <c>completed</c>, <c>failed</c> or <c>cancelled</c> (the terminal states).</summary>
    public string State { get; init; } = "";

    public long ChunksTotal { get; init; }
    public long ChunksDone { get; init; }
    public long ChunksFailed { get; init; }
    public long ChunksReady { get; init; }
    public long ChunksReserved { get; init; }
    public long OperationsDone { get; init; }
    public int ChunkSize { get; init; }
    public int MaxChunkRetries { get; init; }
    public JsonElement? Metadata { get; init; }
    public IReadOnlyDictionary<string, long> Labels { get; init; } = new Dictionary<string, long>();

    /// <summary>The object-store prefix of a submission created from <c>chunks_ref</c>, else null.</summary>
    public string? Prefix { get; init; }

    public SubmissionCallback? OnComplete { get; init; }

    /// <summary>The chunk that failed the submission, with its last error; null unless <see cref="State"/> is <c>failed</c>.</summary>
    public FailedChunk? FailedChunk { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>True once the submission is <c>completed</c>, <c>failed</c> or <c>cancelled</c>: it changes no more.</summary>
    [JsonIgnore]
    public bool IsTerminal => State is "completed" or "failed" or "cancelled";
}

/// <summary>The job the server enqueues when a submission completes or fails (not when it is cancelled).</summary>
public sealed record SubmissionCallback
{
    public string Queue { get; init; } = "";

    /// <summary>The job's kind; the server's default is <c>submission.finished</c>.</summary>
    public string? Kind { get; init; }

    /// <summary>Passed to the job as <c>payload.payload</c>, beside the finished submission.</summary>
    public JsonElement? Payload { get; init; }

    /// <summary>Push delivery of the callback job (docs/delivery.md): the server delivers it to these instead of a worker leasing it.</summary>
    public IReadOnlyList<PushDestination>? Destinations { get; init; }
}

/// <summary>The chunk whose retries ran out, failing its submission.</summary>
public sealed record FailedChunk
{
    public long Index { get; init; }
    public string? Error { get; init; }
}

/// <summary>One page of <see cref="ConveyorClient.ListSubmissionsAsync"/>, newest first.</summary>
public sealed record SubmissionPage
{
    public IReadOnlyList<SubmissionInfo> Submissions { get; init; } = [];

    /// <summary>Pass back as the cursor for the next page; null on the last one.</summary>
    public string? NextCursor { get; init; }
}

/// <summary>Filters of <see cref="ConveyorClient.ListSubmissionsAsync"/>; every one given must match.</summary>
public sealed record SubmissionSearch
{
    /// <summary>Label values that must all match, e.g. <c>{"company_id": 42}</c>.</summary>
    public IReadOnlyDictionary<string, long>? Labels { get; init; }

    /// <summary><c>in_progress</c>, <c>completed</c>, <c>failed</c> or <c>cancelled</c>.</summary>
    public string? State { get; init; }

    /// <summary>The object-store prefix a <c>chunks_ref</c> submission was created with.</summary>
    public string? Prefix { get; init; }

    public string? Queue { get; init; }
}

/// <summary>Everything of a submission but its chunks; every setting is optional (the server's defaults apply).</summary>
public sealed record SubmissionOptions
{
    /// <summary>Operations per chunk, for progress (<see cref="SubmissionInfo.OperationsDone"/>); the server's default is 1.</summary>
    public int? ChunkSize { get; init; }

    /// <summary>Opaque JSON kept with the submission.</summary>
    public JsonElement? Metadata { get; init; }

    /// <summary>Integer-valued labels (at most 16) for lookup and the prefer-distinct reservation strategy.</summary>
    public IReadOnlyDictionary<string, long>? Labels { get; init; }

    /// <summary>Retries per chunk before the submission fails (the server's default is 10).</summary>
    public int? MaxChunkRetries { get; init; }

    /// <summary>A job to enqueue when the submission completes or fails.</summary>
    public SubmissionCallback? OnComplete { get; init; }
}

/// <summary>
/// One chunk to submit: JSON data, bytes (sent as base64), or nothing. Build it with <see cref="FromJson"/>,
/// <see cref="FromBytes"/> or <see cref="Empty"/>.
/// </summary>
public readonly record struct SubmissionChunk
{
    private SubmissionChunk(JsonElement? json, ReadOnlyMemory<byte>? bytes)
    {
        Json = json;
        Bytes = bytes;
    }

    /// <summary>A chunk without a body.</summary>
    public static SubmissionChunk Empty => default;

    /// <summary>The chunk's JSON data, when it has some.</summary>
    public JsonElement? Json { get; }

    /// <summary>The chunk's bytes, when it is binary.</summary>
    public ReadOnlyMemory<byte>? Bytes { get; }

    /// <summary>A chunk whose data is <paramref name="data"/> (a JSON <c>null</c> is a chunk without a body).</summary>
    public static SubmissionChunk FromJson(JsonElement data) => new(data, null);

    /// <summary>A binary chunk, carried as <c>data_base64</c>.</summary>
    public static SubmissionChunk FromBytes(ReadOnlyMemory<byte> data) => new(null, data);
}

/// <summary>An object-store reference: read it with <see cref="ConveyorClient.ReadObjectAsync"/>.</summary>
public sealed record ObjectRef
{
    /// <summary>Which store (<c>fs</c>: the server's directory store).</summary>
    public string Store { get; init; } = "";
    public string Key { get; init; } = "";
}

/// <summary>
/// One line of <see cref="ConveyorClient.ReadResultsAsync"/>: a done chunk's result, exactly one of
/// <see cref="Result"/> (JSON, null when completed without one), <see cref="ResultBase64"/> or <see cref="ResultRef"/>.
/// </summary>
public sealed record ChunkResult
{
    public long Index { get; init; }
    public JsonElement? Result { get; init; }
    public string? ResultBase64 { get; init; }
    public ObjectRef? ResultRef { get; init; }

    /// <summary>The result's bytes when it was completed with bytes; null otherwise.</summary>
    [JsonIgnore]
    public byte[]? ResultBytes => ResultBase64 is null ? null : Convert.FromBase64String(ResultBase64);
}

/// <summary>What <see cref="ConveyorClient.WaitForSubmissionAsync"/> reports after each poll.</summary>
public readonly record struct SubmissionProgress(
    long SubmissionId, string State, long ChunksDone, long ChunksFailed, long ChunksTotal, long OperationsDone)
{
    /// <summary>Done chunks over all chunks, 0 to 1 (1 for a submission of no chunks).</summary>
    public double Fraction => ChunksTotal == 0 ? 1 : (double)ChunksDone / ChunksTotal;

    internal static SubmissionProgress Of(SubmissionInfo s) =>
        new(s.Id, s.State, s.ChunksDone, s.ChunksFailed, s.ChunksTotal, s.OperationsDone);
}

/// <summary>A chunk held by a consumer (<c>POST /v1/chunks/reserve</c>) until it completes, fails or releases it.</summary>
public sealed record ReservedChunk
{
    public long SubmissionId { get; init; }
    public long Index { get; init; }
    public string LeaseToken { get; init; } = "";

    /// <summary>1 for the first reservation; releases do not count.</summary>
    public int Attempt { get; init; }

    public DateTimeOffset LeaseExpiresAt { get; init; }
    public IReadOnlyDictionary<string, long> Labels { get; init; } = new Dictionary<string, long>();

    /// <summary>The chunk's JSON data (null for a binary, referenced or empty chunk).</summary>
    public JsonElement? Data { get; init; }

    public string? DataBase64 { get; init; }

    /// <summary>Where the body is, for a chunk of an object-store submission.</summary>
    public ObjectRef? BodyRef { get; init; }

    /// <summary>Where the server keeps the output of an object-store chunk.</summary>
    public ObjectRef? OutputRef { get; init; }
}

/// <summary>The answer to complete, fail, heartbeat or release of one chunk.</summary>
public sealed record ChunkActionResult
{
    /// <summary><c>completed</c>, <c>already_finished</c>, <c>retry</c>, <c>submission_failed</c>, <c>extended</c> or <c>released</c>.</summary>
    public string Outcome { get; init; } = "";

    /// <summary>The submission after the change.</summary>
    public SubmissionInfo Submission { get; init; } = new();
}

/// <summary>Which submissions a reservation takes chunks from first.</summary>
public enum ChunkReservationOrder
{
    /// <summary>The oldest submission with ready chunks: submissions finish in the order they came (the server's default).</summary>
    Oldest,

    /// <summary>The newest first: a small fresh submission is not stuck behind a long one.</summary>
    Newest,

    /// <summary>A random submission per reservation.</summary>
    Random,
}
