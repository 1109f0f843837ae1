using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Conveyor.Submissions;

namespace Conveyor.Server.Submissions;

/// <summary>Validates submission requests into store requests, in sentences that say what to fix.</summary>
internal static class SubmissionRequests
{
    public const long MaxChunks = 100_000_000;

    public static string? CheckLabelKey(string key) =>
        key.Length is >= 1 and <= 64 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.')
            ? null
            : $"'{Http.JobRequests.Truncate(key)}' is not a valid label name: use 1-64 letters, digits, '_', '-' or '.'.";

    /// <summary>The header of a submission (everything but the chunks); <paramref name="ndjson"/> refuses inline chunks in the header line.</summary>
    public static string? CheckHeader(SubmitBody body, bool ndjson, IReadOnlyCollection<string> deliverySecrets, out NewSubmission submission)
    {
        submission = null!;
        if (body.Queue is null) return "queue is required: the queue whose consumers process the chunks.";
        if (Http.JobRequests.CheckQueue(body.Queue) is { } bad) return bad;
        if (ndjson && body.Chunks is not null) return "An NDJSON submission sends its chunks as the lines after the header, not as a chunks array in it.";
        if (body.Chunks is not null && body.ChunksRef is not null) return "Send chunks (inline) or chunks_ref (in the object store), not both.";
        if (ndjson && body.ChunksRef is not null) return "chunks_ref needs no NDJSON lines: send it as a JSON body (Content-Type application/json).";
        if (body.ChunkSize is < 1 or > 100_000_000) return $"chunk_size must be between 1 and 100000000 operations, not {body.ChunkSize}.";
        if (body.MaxChunkRetries is < 0 or > 1000) return $"max_chunk_retries must be between 0 and 1000, not {body.MaxChunkRetries}.";
        var labels = body.Labels ?? [];
        if (labels.Count > 16) return $"At most 16 labels, not {labels.Count}.";
        foreach (var key in labels.Keys)
        {
            if (CheckLabelKey(key) is { } badLabel) return badLabel;
        }
        string? prefix = null;
        if (body.ChunksRef is { } reference)
        {
            if (ObjectKeys.Check(reference.Prefix) is { } badPrefix) return $"chunks_ref.prefix: {badPrefix}";
            if (reference.Count is null or < 0 or > MaxChunks) return $"chunks_ref.count must be between 0 and {MaxChunks}: how many <prefix>/<index>-in.bin objects there are.";
            prefix = reference.Prefix!.TrimEnd('/');
        }
        SubmissionCallback? callback = null;
        if (body.OnComplete is { } onComplete)
        {
            if (onComplete.Queue is null) return "on_complete.queue is required: the queue of the job to enqueue when the submission finishes.";
            if (Http.JobRequests.CheckQueue(onComplete.Queue) is { } badQueue) return $"on_complete.queue: {badQueue}";
            if (onComplete.Kind is { Length: 0 or > JobLimits.MaxNameLength }) return $"on_complete.kind must be 1-{JobLimits.MaxNameLength} characters.";
            if (!Delivery.Destinations.TryNormalize(onComplete.Destination, onComplete.Destinations, deliverySecrets, out var destinations, out var badDestination))
                return $"on_complete: {badDestination}";
            callback = new SubmissionCallback(onComplete.Queue, onComplete.Kind ?? "submission.finished",
                onComplete.Payload is { ValueKind: not JsonValueKind.Null } payload ? payload.GetRawText() : null, destinations);
        }
        submission = new NewSubmission
        {
            Queue = body.Queue,
            ChunkSize = body.ChunkSize ?? 1,
            MetadataJson = body.Metadata is { ValueKind: not JsonValueKind.Null } metadata ? metadata.GetRawText() : null,
            Labels = labels,
            Prefix = prefix,
            MaxChunkRetries = body.MaxChunkRetries ?? SubmissionLimits.DefaultMaxChunkRetries,
            OnComplete = callback,
        };
        return null;
    }

    public static string? CheckChunk(ChunkItemBody item, long index, out ChunkBody body)
    {
        body = ChunkBody.None;
        if (item.Data is { ValueKind: not JsonValueKind.Null } && item.DataBase64 is not null)
            return $"Chunk {index} has both data and data_base64; send one.";
        if (item.Data is { ValueKind: not JsonValueKind.Null } data)
        {
            body = ChunkBody.Json(Encoding.UTF8.GetBytes(data.GetRawText()));
        }
        else if (item.DataBase64 is not null)
        {
            try
            {
                body = ChunkBody.Binary(Convert.FromBase64String(item.DataBase64));
            }
            catch (FormatException)
            {
                return $"Chunk {index}: data_base64 is not valid base64.";
            }
        }
        return null;
    }

    public static async IAsyncEnumerable<ChunkBody> Inline(IReadOnlyList<ChunkItemBody> chunks)
    {
        for (var i = 0; i < chunks.Count; i++)
        {
            CheckChunk(chunks[i], i, out var body); // checked before the store is called
            yield return body;
        }
        await Task.CompletedTask;
    }

    public static async IAsyncEnumerable<ChunkBody> InObjectStore(long count)
    {
        for (var i = 0L; i < count; i++) yield return ChunkBody.InObjectStore;
        await Task.CompletedTask;
    }
}

/// <summary>
/// An NDJSON submission read line by line and spooled to a temporary file before the store sees it: the whole body is
/// checked first (a bad line 9,999 changes nothing), memory holds one line at a time, and the store's transaction
/// lasts as long as reading a local file takes, never as long as a slow client takes to upload.
/// </summary>
internal sealed class ChunkSpool : IAsyncDisposable
{
    private readonly FileStream _file;

    private ChunkSpool(FileStream file) => _file = file;

    public long Count { get; private set; }

    public SubmitBody Header { get; private set; } = null!;

    public static async Task<(ChunkSpool? Spool, string? Error, bool TooLarge)> ReadAsync(PipeReader body, long maxLine, CancellationToken cancellationToken)
    {
        var path = Path.Combine(Path.GetTempPath(), $"conveyor-submission-{Guid.NewGuid():N}.spool");
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 64 * 1024, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        var spool = new ChunkSpool(file);
        try
        {
            var (error, tooLarge) = await spool.FillAsync(body, maxLine, cancellationToken);
            if (error is not null)
            {
                await spool.DisposeAsync();
                return (null, error, tooLarge);
            }
            await file.FlushAsync(cancellationToken);
            file.Position = 0;
            return (spool, null, false);
        }
        catch
        {
            await spool.DisposeAsync();
            throw;
        }
    }

    private async Task<(string? Error, bool TooLarge)> FillAsync(PipeReader body, long maxLine, CancellationToken cancellationToken)
    {
        var line = 0L;
        var header = false;
        var prefix = new byte[5];
        while (true)
        {
            var read = await body.ReadAsync(cancellationToken);
            var buffer = read.Buffer;
            while (TryLine(ref buffer, out var text))
            {
                line++;
                if (IsBlank(text)) continue;
                if (text.Length > maxLine) return ($"Line {line} is larger than the limit of {maxLine:N0} bytes.", true);
                if (!header)
                {
                    if (Parse(text, SubmissionBodyJson.Default.SubmitBody, line, out var parsed) is { } badHeader) return (badHeader, false);
                    Header = parsed!;
                    header = true;
                    continue;
                }
                if (Parse(text, SubmissionBodyJson.Default.ChunkItemBody, line, out var item) is { } badLine) return (badLine, false);
                if (SubmissionRequests.CheckChunk(item!, Count, out var chunk) is { } badChunk) return ($"Line {line}: {badChunk}", false);
                // Spool record: kind (1 byte), length (4 bytes), body.
                prefix[0] = (byte)chunk.Kind;
                BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(1), chunk.Bytes.Length);
                await _file.WriteAsync(prefix, cancellationToken);
                await _file.WriteAsync(chunk.Bytes, cancellationToken);
                Count++;
            }
            if (buffer.Length > maxLine) return ($"Line {line + 1} is larger than the limit of {maxLine:N0} bytes.", true);
            if (read.IsCompleted)
            {
                if (!buffer.IsEmpty && !IsBlank(buffer))
                {
                    // The last line may end without a newline.
                    line++;
                    if (!header)
                    {
                        if (Parse(buffer, SubmissionBodyJson.Default.SubmitBody, line, out var parsed) is { } badHeader) return (badHeader, false);
                        Header = parsed!;
                        header = true;
                    }
                    else
                    {
                        if (Parse(buffer, SubmissionBodyJson.Default.ChunkItemBody, line, out var item) is { } badLine) return (badLine, false);
                        if (SubmissionRequests.CheckChunk(item!, Count, out var chunk) is { } badChunk) return ($"Line {line}: {badChunk}", false);
                        prefix[0] = (byte)chunk.Kind;
                        BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(1), chunk.Bytes.Length);
                        await _file.WriteAsync(prefix, cancellationToken);
                        await _file.WriteAsync(chunk.Bytes, cancellationToken);
                        Count++;
                    }
                }
                body.AdvanceTo(buffer.End);
                break;
            }
            body.AdvanceTo(buffer.Start, buffer.End);
        }
        if (!header) return ("The NDJSON body is empty: its first line is the submission header ({\"queue\": ...}), each further line one chunk.", false);
        return (null, false);
    }

    /// <summary>Reads the spooled chunks back in order; one buffer is reused, so callers must copy what they keep.</summary>
    public async IAsyncEnumerable<ChunkBody> ReadBackAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var prefix = new byte[5];
        var buffer = new byte[64 * 1024];
        for (var i = 0L; i < Count; i++)
        {
            await _file.ReadExactlyAsync(prefix, cancellationToken);
            var kind = (BodyKind)prefix[0];
            var length = BinaryPrimitives.ReadInt32LittleEndian(prefix.AsSpan(1));
            if (buffer.Length < length) buffer = new byte[length];
            await _file.ReadExactlyAsync(buffer.AsMemory(0, length), cancellationToken);
            yield return new ChunkBody(kind, buffer.AsMemory(0, length));
        }
    }

    public ValueTask DisposeAsync() => _file.DisposeAsync();

    private static bool TryLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var end = buffer.PositionOf((byte)'\n');
        if (end is null)
        {
            line = default;
            return false;
        }
        line = buffer.Slice(0, end.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, end.Value));
        return true;
    }

    private static bool IsBlank(ReadOnlySequence<byte> text)
    {
        foreach (var segment in text)
        {
            if (!segment.Span.Trim(" \t\r"u8).IsEmpty) return false;
        }
        return true;
    }

    private static string? Parse<T>(ReadOnlySequence<byte> text, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, long line, out T? value)
    {
        try
        {
            var reader = new Utf8JsonReader(text);
            value = JsonSerializer.Deserialize(ref reader, type);
            return value is null ? $"Line {line} is null; each line must be a JSON object." : null;
        }
        catch (JsonException e)
        {
            value = default;
            return $"Line {line}: {Http.RequestBody.Describe(e)}";
        }
    }
}
