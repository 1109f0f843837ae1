using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Conveyor.Client.Internal;

namespace Conveyor.Client;

// Submissions (docs/submissions.md): one large piece of work split into ordered chunks that consumers process in
// parallel. Producer side here; the chunk routes below are what ChunkWorker uses, public for hand-written consumers.
public sealed partial class ConveyorClient
{
    private static readonly TimeSpan DefaultSubmissionPoll = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Creates a submission of <paramref name="chunks"/> in <paramref name="queue"/> (<c>POST /v1/submissions</c>, NDJSON).
    /// The chunks are enumerated while the request body is sent, one line at a time, so a submission of any size
    /// never sits in memory; the server checks every line before it creates anything (all chunks or none).
    /// Zero chunks give a submission that is completed at once.
    /// </summary>
    /// <remarks>The chunks are enumerated once. The upload counts against the <see cref="HttpClient.Timeout"/> of the client used.</remarks>
    public async Task<SubmissionInfo> SubmitAsync(
        string queue, IAsyncEnumerable<SubmissionChunk> chunks, SubmissionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        using var content = new NdjsonSubmissionContent(Header(queue, options, chunksRef: null), chunks);
        HttpResponseMessage response;
        try
        {
            response = await SendAsync(HttpMethod.Post, "v1/submissions", content, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (content.SourceFailure is { } failure)
        {
            // The chunk sequence threw mid-upload: the server saw a truncated body and created nothing; the caller's
            // exception says why better than the broken request would.
            ExceptionDispatchInfo.Throw(failure);
            throw;
        }

        using (response)
        {
            return await ReadAsync(response, SubmissionJsonContext.Default.SubmissionInfo, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Creates a submission whose chunks' data are <paramref name="chunks"/> serialized as JSON, streamed as for the
    /// <see cref="SubmissionChunk"/> overload. Pass <paramref name="typeInfo"/> from a source-generated context to avoid
    /// reflection, or null to use <see cref="SerializerOptions"/> (a required argument, so a call without one is never
    /// ambiguous with the <see cref="SubmissionChunk"/> overload).
    /// </summary>
    public Task<SubmissionInfo> SubmitAsync<T>(
        string queue,
        IAsyncEnumerable<T> chunks,
        JsonTypeInfo<T>? typeInfo,
        SubmissionOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        var info = TypeInfo(typeInfo);
        return SubmitAsync(queue, Map(chunks, item => SubmissionChunk.FromJson(JsonSerializer.SerializeToElement(item, info)), cancellationToken), options, cancellationToken);
    }

    /// <summary>Creates a submission of binary chunks (sent as <c>data_base64</c>), streamed as for the <see cref="SubmissionChunk"/> overload.</summary>
    public Task<SubmissionInfo> SubmitBytesAsync(
        string queue, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, SubmissionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        return SubmitAsync(queue, Map(chunks, SubmissionChunk.FromBytes, cancellationToken), options, cancellationToken);
    }

    /// <summary>
    /// Creates a submission whose <paramref name="count"/> chunk bodies are already in the object store, at
    /// <c>&lt;prefix&gt;/&lt;index&gt;-in.bin</c> (write them with <see cref="WriteObjectAsync"/>, or into the server's
    /// object-store directory). Consumers receive references; results come back as <see cref="ChunkResult.ResultRef"/>.
    /// </summary>
    public async Task<SubmissionInfo> SubmitFromObjectStoreAsync(
        string queue, string prefix, long count, SubmissionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var header = Header(queue, options, new ChunksRefBody(prefix, count));
        using var response = await SendAsync(
            HttpMethod.Post, "v1/submissions", Json(header, SubmissionJsonContext.Default.SubmitHeader), cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, SubmissionJsonContext.Default.SubmissionInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a submission's state and progress (<c>GET /v1/submissions/{id}</c>); an unknown id throws <see cref="SubmissionNotFoundException"/>.</summary>
    public async Task<SubmissionInfo> GetSubmissionAsync(long id, CancellationToken cancellationToken = default)
    {
        using var response = await SendForSubmissionAsync(HttpMethod.Get, $"v1/submissions/{Id(id)}", null, id, null, cancellationToken)
            .ConfigureAwait(false);
        return await ReadAsync(response, SubmissionJsonContext.Default.SubmissionInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Looks submissions up, newest first (<c>GET /v1/submissions</c>), by labels, state, object-store prefix and queue.
    /// Pass <see cref="SubmissionPage.NextCursor"/> back as <paramref name="cursor"/> for the next page.
    /// </summary>
    public async Task<SubmissionPage> ListSubmissionsAsync(
        SubmissionSearch? filters = null, string? cursor = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        var query = new StringBuilder("v1/submissions");
        var separator = '?';
        void Add(string name, string? value)
        {
            if (value is not null)
            {
                query.Append(separator).Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value));
                separator = '&';
            }
        }

        foreach (var (name, value) in filters?.Labels ?? new Dictionary<string, long>())
        {
            Add("label." + name, value.ToString(CultureInfo.InvariantCulture));
        }

        Add("state", filters?.State);
        Add("prefix", filters?.Prefix);
        Add("queue", filters?.Queue);
        Add("cursor", cursor);
        Add("limit", limit?.ToString(CultureInfo.InvariantCulture));
        using var response = await SendAsync(HttpMethod.Get, query.ToString(), content: null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, SubmissionJsonContext.Default.SubmissionPage, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Cancels an <c>in_progress</c> submission (<c>POST /v1/submissions/{id}/cancel</c>): its ready and reserved chunks
    /// are skipped and no callback is enqueued. A finished one throws <see cref="SubmissionConflictException"/> whose
    /// <see cref="SubmissionConflictException.State"/> names its terminal state.
    /// </summary>
    public async Task<SubmissionInfo> CancelSubmissionAsync(long id, CancellationToken cancellationToken = default)
    {
        using var response = await SendForSubmissionAsync(HttpMethod.Post, $"v1/submissions/{Id(id)}/cancel", null, id, null, cancellationToken)
            .ConfigureAwait(false);
        return await ReadAsync(response, SubmissionJsonContext.Default.SubmissionInfo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Polls the submission every <paramref name="pollInterval"/> (default 500 ms) until it is terminal or
    /// <paramref name="timeout"/> passes, reporting each poll to <paramref name="progress"/>. Returns the completed
    /// submission; throws <see cref="SubmissionFailedException"/> when it ended failed or cancelled and
    /// <see cref="SubmissionWaitTimeoutException"/> when time ran out (the submission is left as it is). A transient
    /// failure between polls (server restart) is retried until the deadline.
    /// </summary>
    public async Task<SubmissionInfo> WaitForSubmissionAsync(
        long id,
        TimeSpan timeout,
        IProgress<SubmissionProgress>? progress = null,
        TimeSpan? pollInterval = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        var interval = pollInterval ?? DefaultSubmissionPoll;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero, nameof(pollInterval));
        var started = Stopwatch.GetTimestamp();
        SubmissionInfo? last = null;
        while (true)
        {
            try
            {
                var submission = await GetSubmissionAsync(id, cancellationToken).ConfigureAwait(false);
                last = submission;
                progress?.Report(SubmissionProgress.Of(submission));
                if (submission.IsTerminal)
                {
                    return submission.State == "completed" ? submission : throw SubmissionEnded(submission);
                }
            }
            catch (ConveyorException exception) when (exception.IsTransient)
            {
                // The submission is durable: a restarting or overloaded server is waited out while there is time.
            }

            var left = timeout - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                throw new SubmissionWaitTimeoutException(
                    $"submission {Id(id)} did not finish within {timeout.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms"
                    + (last is null ? "" : $" ({last.ChunksDone} of {last.ChunksTotal} chunks done)")
                    + $"; is a chunk worker running for queue '{last?.Queue ?? "?"}'? Wait again, or cancel it",
                    id, last);
            }

            await Task.Delay(interval < left ? interval : left, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Streams a submission's results in chunk order (<c>GET /v1/submissions/{id}/results</c>), one line at a time as
    /// the server sends them (millions of chunks never sit in memory). A submission that is not completed throws
    /// <see cref="SubmissionConflictException"/> unless <paramref name="partial"/>, which gives the chunks done so far.
    /// </summary>
    public async IAsyncEnumerable<ChunkResult> ReadResultsAsync(
        long id, bool partial = false, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var path = $"v1/submissions/{Id(id)}/results" + (partial ? "?partial=true" : "");
        using var response = await SendForSubmissionAsync(HttpMethod.Get, path, null, id, null, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            // topLevelValues: NDJSON is a sequence of top-level JSON values, read one by one as the bytes arrive.
            var lines = JsonSerializer.DeserializeAsyncEnumerable(stream, SubmissionJsonContext.Default.ChunkResult, topLevelValues: true, cancellationToken);
            var enumerator = lines.GetAsyncEnumerator(cancellationToken);
            await using (enumerator.ConfigureAwait(false))
            {
                while (true)
                {
                    ChunkResult? line;
                    try
                    {
                        if (!await enumerator.MoveNextAsync().ConfigureAwait(false))
                        {
                            yield break;
                        }

                        line = enumerator.Current;
                    }
                    catch (JsonException exception)
                    {
                        throw ErrorFactory.UnreadableAnswer(response.StatusCode, exception);
                    }
                    catch (HttpRequestException exception)
                    {
                        throw ErrorFactory.Unreachable(BaseAddress, exception);
                    }

                    if (line is not null)
                    {
                        yield return line;
                    }
                }
            }
        }
    }

    /// <summary>Opens an object-store body for reading (<c>GET /v1/objects/{key}</c>); dispose the stream. An unknown key throws <see cref="ObjectNotFoundException"/>.</summary>
    public async Task<Stream> ReadObjectAsync(string key, CancellationToken cancellationToken = default)
    {
        HttpResponseMessage response;
        try
        {
            response = await SendAsync(HttpMethod.Get, "v1/objects/" + ObjectPath(key), content: null, cancellationToken).ConfigureAwait(false);
        }
        catch (ConveyorException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
        {
            throw new ObjectNotFoundException(exception.Message, key, HttpStatusCode.NotFound) { ProblemType = exception.ProblemType, Title = exception.Title };
        }

        try
        {
            // Disposing the content stream releases the connection; the response holds nothing else that needs disposing.
            return await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>Writes an object-store body whole (<c>PUT /v1/objects/{key}</c>), e.g. <c>&lt;prefix&gt;/&lt;index&gt;-in.bin</c> before a <c>chunks_ref</c> submission.</summary>
    public async Task WriteObjectAsync(string key, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var body = new StreamContent(content);
        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await SendAsync(HttpMethod.Put, "v1/objects/" + ObjectPath(key), body, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reserves up to <paramref name="max"/> chunks of <paramref name="queue"/> (<c>POST /v1/chunks/reserve</c>), waiting
    /// up to <paramref name="wait"/> (at most 60 s) for one. Finish each with <c>CompleteChunkAsync</c>,
    /// <see cref="FailChunkAsync"/> or <see cref="ReleaseChunkAsync"/> before <paramref name="lease"/> runs out
    /// (extend it with <see cref="HeartbeatChunkAsync"/>). <paramref name="preferDistinct"/> names a label to spread
    /// reservations across its values.
    /// </summary>
    public async Task<IReadOnlyList<ReservedChunk>> ReserveChunksAsync(
        string queue,
        int max = 1,
        TimeSpan? wait = null,
        TimeSpan? lease = null,
        ChunkReservationOrder order = ChunkReservationOrder.Oldest,
        string? preferDistinct = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        return await ReserveChunksAsync(ReserveBody(queue, max, wait, lease, order, preferDistinct), cancellationToken).ConfigureAwait(false);
    }

    internal static ChunkReserveBody ReserveBody(
        string queue, int max, TimeSpan? wait, TimeSpan? lease, ChunkReservationOrder order, string? preferDistinct) =>
        new(queue, max, (long)(wait ?? TimeSpan.Zero).TotalMilliseconds, (long)(lease ?? TimeSpan.FromSeconds(30)).TotalMilliseconds,
            order switch { ChunkReservationOrder.Newest => "newest", ChunkReservationOrder.Random => "random", _ => "oldest" }, preferDistinct);

    /// <summary>The API key header, for the consumer WebSocket (which does not go through HttpClient).</summary>
    internal AuthenticationHeaderValue? ApiKeyHeader => _apiKey;

    internal async Task<IReadOnlyList<ReservedChunk>> ReserveChunksAsync(ChunkReserveBody body, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(
            HttpMethod.Post, "v1/chunks/reserve", Json(body, SubmissionJsonContext.Default.ChunkReserveBody), cancellationToken).ConfigureAwait(false);
        var answer = await ReadAsync(response, SubmissionJsonContext.Default.ChunkReserveAnswer, cancellationToken).ConfigureAwait(false);
        return answer.Chunks;
    }

    /// <summary>
    /// Completes a reserved chunk with a JSON <paramref name="result"/> (or none) and optionally the number of
    /// <paramref name="operations"/> it did (default: the submission's chunk size). Completing a chunk that is already
    /// done answers <c>already_finished</c> and counts nothing. A lost lease throws <see cref="ChunkLeaseLostException"/>.
    /// </summary>
    public Task<ChunkActionResult> CompleteChunkAsync(
        ReservedChunk chunk, JsonElement? result = null, long? operations = null, CancellationToken cancellationToken = default) =>
        ChunkActionAsync("complete", Target(chunk) with { Result = result, Operations = operations }, cancellationToken);

    /// <summary>Completes a reserved chunk with a binary result (sent as <c>result_base64</c>).</summary>
    public Task<ChunkActionResult> CompleteChunkAsync(
        ReservedChunk chunk, ReadOnlyMemory<byte> result, long? operations = null, CancellationToken cancellationToken = default) =>
        ChunkActionAsync("complete", Target(chunk) with { ResultBase64 = Convert.ToBase64String(result.Span), Operations = operations }, cancellationToken);

    /// <summary>
    /// Reports a failed attempt of a chunk: outcome <c>retry</c> (ready again) while retries remain, else
    /// <c>submission_failed</c> (the submission failed and its other chunks are skipped).
    /// </summary>
    public Task<ChunkActionResult> FailChunkAsync(ReservedChunk chunk, string error, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(error);
        return ChunkActionAsync("fail", Target(chunk) with { Error = error }, cancellationToken);
    }

    /// <summary>Extends a chunk's lease to <paramref name="extend"/> from now (server default 30 s).</summary>
    public Task<ChunkActionResult> HeartbeatChunkAsync(ReservedChunk chunk, TimeSpan? extend = null, CancellationToken cancellationToken = default) =>
        ChunkActionAsync("heartbeat", Target(chunk) with { ExtendMs = extend is { } e ? (long)e.TotalMilliseconds : null }, cancellationToken);

    /// <summary>Hands a reserved chunk back untouched: ready for another consumer at once, the attempt not counted.</summary>
    public Task<ChunkActionResult> ReleaseChunkAsync(ReservedChunk chunk, CancellationToken cancellationToken = default) =>
        ChunkActionAsync("release", Target(chunk), cancellationToken);

    internal async Task<ChunkActionResult> ChunkActionAsync(string action, ChunkActionBody body, CancellationToken cancellationToken)
    {
        using var response = await SendForSubmissionAsync(
            HttpMethod.Post, "v1/chunks/" + action, Json(body, SubmissionJsonContext.Default.ChunkActionBody), body.SubmissionId, body.Index,
            cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, SubmissionJsonContext.Default.ChunkActionResult, cancellationToken).ConfigureAwait(false);
    }

    internal static ChunkActionBody Target(ReservedChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        return new ChunkActionBody(chunk.SubmissionId, chunk.Index, chunk.LeaseToken);
    }

    private static SubmitHeader Header(string queue, SubmissionOptions? options, ChunksRefBody? chunksRef)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        return new SubmitHeader(
            queue, options?.ChunkSize, options?.Metadata, options?.Labels, options?.MaxChunkRetries, options?.OnComplete, chunksRef);
    }

    private static async IAsyncEnumerable<TOut> Map<TIn, TOut>(
        IAsyncEnumerable<TIn> source, Func<TIn, TOut> map, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var item in source.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            yield return map(item);
        }
    }

    /// <summary>Object keys are '/'-separated segments; each is escaped, the separators kept.</summary>
    private static string ObjectPath(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return string.Join('/', key.Split('/').Select(Uri.EscapeDataString));
    }

    private static SubmissionFailedException SubmissionEnded(SubmissionInfo submission) =>
        new(submission.State == "cancelled"
                ? $"submission {Id(submission.Id)} in '{submission.Queue}' was cancelled ({submission.ChunksDone} of {submission.ChunksTotal} chunks done)"
                : $"submission {Id(submission.Id)} in '{submission.Queue}' failed"
                  + (submission.FailedChunk is { } failed ? $": chunk {Id(failed.Index)} ran out of retries ({failed.Error})" : ""),
            submission);

    /// <summary>As SendAsync, with 404 and 409 turned into the submission exceptions.</summary>
    private async Task<HttpResponseMessage> SendForSubmissionAsync(
        HttpMethod method, string path, HttpContent? content, long submissionId, long? chunkIndex, CancellationToken cancellationToken)
    {
        try
        {
            return await SendAsync(method, path, content, cancellationToken).ConfigureAwait(false);
        }
        catch (ConveyorException exception) when (exception.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
        {
            ConveyorException typed = exception.StatusCode switch
            {
                HttpStatusCode.NotFound => new SubmissionNotFoundException(exception.Message, submissionId, HttpStatusCode.NotFound),
                _ when chunkIndex is { } index => new ChunkLeaseLostException(exception.Message, submissionId, index, HttpStatusCode.Conflict),
                _ => new SubmissionConflictException(
                    exception.Message, submissionId, exception.ProblemState ?? StateIn(exception.Message), HttpStatusCode.Conflict),
            };
            typed.ProblemType = exception.ProblemType;
            typed.Title = exception.Title;
            throw typed;
        }
    }

    /// <summary>A server without the <c>state</c> field still names the state in its 409 sentence ("Submission 7 is already completed; …").</summary>
    private static string? StateIn(string detail) =>
        SubmissionStateWord().Match(detail) is { Success: true } match ? match.Groups[1].Value : null;

    [GeneratedRegex(@"\bis (?:already )?(in_progress|completed|failed|cancelled)\b")]
    private static partial Regex SubmissionStateWord();
}
