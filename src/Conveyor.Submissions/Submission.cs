namespace Conveyor.Submissions;

/// <summary>Where a submission stands. The numbers are stored; append only.</summary>
public enum SubmissionState
{
    InProgress = 0,
    Completed = 1,
    Failed = 2,
    Cancelled = 3,
}

/// <summary>Where a chunk stands. The numbers are stored; append only.</summary>
public enum ChunkState
{
    Ready = 0,
    Reserved = 1,
    Done = 2,
    Failed = 3,
    /// <summary>Never handed out any more: its submission failed or was cancelled.</summary>
    Skipped = 4,
}

/// <summary>How a chunk's body (input or result) is held. The numbers are stored; append only.</summary>
public enum BodyKind
{
    /// <summary>No body (a result not written yet, or a chunk without data).</summary>
    None = 0,
    /// <summary>UTF-8 JSON text, stored as is.</summary>
    Json = 1,
    /// <summary>Opaque bytes (base64 on the wire).</summary>
    Bytes = 2,
    /// <summary>In the object store under the submission's prefix: <c>&lt;prefix&gt;/&lt;index&gt;-in.bin</c> or <c>-out.bin</c>.</summary>
    Object = 3,
}

/// <summary>A chunk's input or result: JSON text, bytes, or a reference into the object store.</summary>
public readonly record struct ChunkBody(BodyKind Kind, ReadOnlyMemory<byte> Bytes)
{
    public static readonly ChunkBody None = new(BodyKind.None, default);
    public static readonly ChunkBody InObjectStore = new(BodyKind.Object, default);
    public static ChunkBody Json(ReadOnlyMemory<byte> utf8) => new(BodyKind.Json, utf8);
    public static ChunkBody Binary(ReadOnlyMemory<byte> bytes) => new(BodyKind.Bytes, bytes);
}

/// <summary>
/// A job to enqueue when the submission completes or fails (the completion callback). The server enqueues it through
/// the job store with the idempotency key <c>submission-&lt;id&gt;</c>, so a retried dispatch never enqueues it twice.
/// With <see cref="DestinationsJson"/> (push delivery's canonical array) the job is delivered to those destinations.
/// </summary>
public sealed record SubmissionCallback(string Queue, string Kind, string? PayloadJson, string? DestinationsJson = null);

/// <summary>The header of a new submission; its chunks come separately, as a stream.</summary>
public sealed record NewSubmission
{
    public required string Queue { get; init; }

    /// <summary>Operations per chunk, for progress reports (operations done = chunks done × chunk size unless a completion says otherwise).</summary>
    public int ChunkSize { get; init; } = 1;

    public string? MetadataJson { get; init; }

    /// <summary>Integer-valued labels used for lookup and prefer-distinct reservation.</summary>
    public IReadOnlyDictionary<string, long> Labels { get; init; } = new Dictionary<string, long>();

    /// <summary>The object-store prefix holding <c>&lt;index&gt;-in.bin</c> (chunks_ref), and where outputs go; null for inline bodies.</summary>
    public string? Prefix { get; init; }

    public int MaxChunkRetries { get; init; } = SubmissionLimits.DefaultMaxChunkRetries;

    public SubmissionCallback? OnComplete { get; init; }
}

/// <summary>A submission as stored: its header, progress counters and outcome.</summary>
public sealed record Submission
{
    public required long Id { get; init; }
    public required string Queue { get; init; }
    public required SubmissionState State { get; init; }
    public long ChunksTotal { get; init; }
    public long ChunksDone { get; init; }
    public long ChunksFailed { get; init; }
    public long ChunksReady { get; init; }
    public long ChunksReserved { get; init; }
    public long OperationsDone { get; init; }
    public int ChunkSize { get; init; }
    public int MaxChunkRetries { get; init; }
    public string? MetadataJson { get; init; }
    public IReadOnlyDictionary<string, long> Labels { get; init; } = new Dictionary<string, long>();
    public string? Prefix { get; init; }
    public SubmissionCallback? OnComplete { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public long? FailedChunkIndex { get; init; }
    public string? FailedChunkError { get; init; }

    public bool IsTerminal => State != SubmissionState.InProgress;
}

/// <summary>One chunk handed to a consumer. The lease token proves the reservation in complete, fail and heartbeat.</summary>
public sealed record ReservedChunk(
    long SubmissionId,
    long Index,
    string LeaseToken,
    int Attempt,
    DateTimeOffset LeaseExpiresAt,
    ChunkBody Body,
    string? Prefix,
    IReadOnlyDictionary<string, long> Labels)
{
    /// <summary>The object-store key of the input when <see cref="Body"/> is <see cref="BodyKind.Object"/>.</summary>
    public string? InputKey => Body.Kind == BodyKind.Object ? ObjectKeys.Input(Prefix!, Index) : null;
}

/// <summary>One line of a submission's results, in chunk order.</summary>
public readonly record struct ChunkResult(long Index, ChunkBody Result, string? Prefix)
{
    public string? OutputKey => Result.Kind == BodyKind.Object ? ObjectKeys.Output(Prefix!, Index) : null;
}

/// <summary>Which submissions a consumer takes chunks from first.</summary>
public enum SubmissionOrder
{
    /// <summary>The oldest submission with ready chunks (the default): submissions finish in the order they came.</summary>
    Oldest,
    /// <summary>The newest submission first: fresh, usually small, work jumps ahead.</summary>
    Newest,
    /// <summary>A random submission per reservation: no submission waits behind a long one for ever.</summary>
    Random,
}

/// <summary>
/// A reservation: up to <see cref="Max"/> ready chunks of one queue. <see cref="PreferDistinct"/> names a label: among the
/// submissions with ready chunks, the label value with the fewest chunks in flight goes first (ties broken by
/// <see cref="Order"/>), so consumers spread across e.g. companies. <see cref="Owner"/> names a connection whose
/// reservations are released together when it drops.
/// </summary>
public sealed record ReserveRequest(string Queue, int Max, TimeSpan LeaseDuration)
{
    public SubmissionOrder Order { get; init; } = SubmissionOrder.Oldest;
    public string? PreferDistinct { get; init; }
    public string? Owner { get; init; }
}

public sealed record ChunkCompletion(long SubmissionId, long Index, string LeaseToken)
{
    public ChunkBody Result { get; init; } = ChunkBody.None;

    /// <summary>Operations this chunk did; null counts the submission's chunk size.</summary>
    public long? Operations { get; init; }
}

public sealed record ChunkFailure(long SubmissionId, long Index, string LeaseToken, string Error);

public enum ChunkOutcomeStatus
{
    Ok,
    NotFound,
    /// <summary>The lease token is not the chunk's current one (expired, released, or another consumer's).</summary>
    StaleLease,
    /// <summary>The chunk is already finished: completing it again changes nothing and counts nothing.</summary>
    AlreadyFinished,
    /// <summary>The chunk was skipped because its submission failed or was cancelled.</summary>
    Skipped,
}

/// <summary>The outcome of complete, fail or heartbeat on one chunk, with the submission as it is afterwards.</summary>
public readonly record struct ChunkOutcome(ChunkOutcomeStatus Status, Submission? Submission, string? Detail)
{
    public bool IsOk => Status == ChunkOutcomeStatus.Ok;
}

public enum CancelStatus
{
    Cancelled,
    NotFound,
    AlreadyTerminal,
}

public readonly record struct CancelOutcome(CancelStatus Status, Submission? Submission);

/// <summary>A lookup: every given condition must hold. Newest first, keyset paged by id.</summary>
public sealed record SubmissionQuery
{
    public string? Queue { get; init; }
    public SubmissionState? State { get; init; }
    public string? Prefix { get; init; }
    public IReadOnlyDictionary<string, long> Labels { get; init; } = new Dictionary<string, long>();
    public long? BeforeId { get; init; }
    public int Limit { get; init; } = 100;
}

public static class SubmissionLimits
{
    public const int DefaultMaxChunkRetries = 10;
    public const int MaxReserve = 1000;

    /// <summary>Chunk rows read or written per statement batch: large enough to amortise round trips, small enough to stay in cache.</summary>
    public const int Batch = 1000;
}

/// <summary>The object-store layout of a submission's bodies.</summary>
public static class ObjectKeys
{
    public static string Input(string prefix, long index) => $"{prefix.TrimEnd('/')}/{index}-in.bin";
    public static string Output(string prefix, long index) => $"{prefix.TrimEnd('/')}/{index}-out.bin";

    /// <summary>
    /// Null when the key (or prefix) is safe to use as a relative path in any object store: segments of letters, digits,
    /// <c>.</c>, <c>_</c> and <c>-</c> separated by <c>/</c>, no <c>.</c> or <c>..</c> segment; otherwise a sentence saying why not.
    /// </summary>
    public static string? Check(string? key)
    {
        if (string.IsNullOrEmpty(key)) return "An object key must not be empty.";
        if (key.Length > 512) return $"An object key must be at most 512 characters, not {key.Length}.";
        foreach (var segment in key.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..")
                return $"The object key '{key}' has an empty, '.' or '..' segment; use names like 'invoices/2026-11/batch-7'.";
            foreach (var c in segment)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                    return $"The object key '{key}' may only hold letters, digits, '.', '_', '-' and '/', not '{c}'.";
            }
        }
        return null;
    }
}
