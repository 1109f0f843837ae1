using System.Buffers;
using System.Text.Json;
using Conveyor.Server.Http;
using Conveyor.Server.Security;
using Conveyor.Submissions;
using Microsoft.AspNetCore.Http.Features;

namespace Conveyor.Server.Submissions;

/// <summary>The submission, chunk and object routes (docs/submissions.md). Endpoints validate and map outcomes; the store does the work.</summary>
internal static class SubmissionEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithTags("submissions");
        v1.MapPost("/submissions", Submit).Requires(Access.Enqueue)
            .WithName("createSubmission")
            .WithSummary("Submit many chunks as one submission (JSON, or NDJSON streamed: header line, then one chunk per line)")
            .Accepts<SubmitBody>("application/json", "application/x-ndjson")
            .Produces<SubmissionResponse>(201)
            .ProducesProblem(400)
            .ProducesProblem(413);
        v1.MapGet("/submissions", Find).Requires(Access.Read)
            .WithName("findSubmissions")
            .WithSummary("Find submissions by label.<name>=<integer>, state, prefix and queue, newest first")
            .Produces<SubmissionListResponse>(200)
            .ProducesProblem(400);
        v1.MapGet("/submissions/{id:long}", Get).Requires(Access.Read)
            .WithName("getSubmission")
            .WithSummary("A submission's state and progress")
            .Produces<SubmissionResponse>(200)
            .ProducesProblem(404);
        v1.MapGet("/submissions/{id:long}/results", Results).Requires(Access.Read)
            .WithName("getSubmissionResults")
            .WithSummary("The chunks' results in index order, streamed as NDJSON (409 until completed unless partial=true)")
            .Produces<ChunkResultLine>(200, "application/x-ndjson")
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/submissions/{id:long}/cancel", Cancel).Requires(Access.Admin)
            .WithName("cancelSubmission")
            .WithSummary("Cancel an unfinished submission; its remaining chunks are skipped")
            .Produces<SubmissionResponse>(200)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/chunks/reserve", Reserve).Requires(Access.Work)
            .WithName("reserveChunks")
            .WithSummary("Reserve ready chunks of a queue's submissions, long-polling up to wait_ms")
            .Accepts<ReserveBody>("application/json")
            .Produces<ReserveResponse>(200)
            .ProducesProblem(400);
        v1.MapPost("/chunks/complete", Complete).Requires(Access.Work)
            .WithName("completeChunk")
            .WithSummary("Complete a reserved chunk with its result (a finished chunk: no-op, outcome already_finished)")
            .Accepts<ChunkActionBody>("application/json")
            .Produces<ChunkActionResponse>(200)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409).ProducesProblem(413);
        v1.MapPost("/chunks/fail", Fail).Requires(Access.Work)
            .WithName("failChunk")
            .WithSummary("Fail an attempt: retried, or the submission fails once max_chunk_retries are spent")
            .Accepts<ChunkActionBody>("application/json")
            .Produces<ChunkActionResponse>(200)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        v1.MapPost("/chunks/heartbeat", Heartbeat).Requires(Access.Work)
            .WithName("heartbeatChunk")
            .WithSummary("Extend a chunk's reservation")
            .Accepts<ChunkActionBody>("application/json")
            .Produces<ChunkActionResponse>(200)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        v1.MapPost("/chunks/release", Release).Requires(Access.Work)
            .WithName("releaseChunk")
            .WithSummary("Hand a reserved chunk back untouched; the attempt is not counted")
            .Accepts<ChunkActionBody>("application/json")
            .Produces<ChunkActionResponse>(200)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        // Any key may read and write objects: producers put inputs, consumers put outputs.
        v1.MapGet("/objects/{**key}", GetObject).Requires(Access.Read)
            .WithName("getObject")
            .WithSummary("Read an object-store body (chunk input or output)")
            .Produces(200, contentType: "application/octet-stream")
            .ProducesProblem(400).ProducesProblem(404);
        v1.MapPut("/objects/{**key}", PutObject).Requires(Access.Read)
            .WithName("putObject")
            .WithSummary("Write an object-store body (chunk input or output), whole")
            .Accepts<byte[]>("application/octet-stream")
            .Produces(204)
            .ProducesProblem(400);
        // OpenAPI cannot describe a WebSocket: docs/submissions.md does.
        v1.MapGet("/consume", ConsumeSocket.RunAsync).Requires(Access.Work).ExcludeFromDescription();
    }

    private static async Task<IResult> Submit(HttpContext context, ChunkOperations chunks, ServerOptions options, Delivery.PushQueues push, CancellationToken ct)
    {
        var type = context.Request.ContentType ?? "application/json";
        if (type.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase))
        {
            // Streamed: the total is not limited (memory holds one line), each line is.
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = null;
            var (spool, error, tooLarge) = await ChunkSpool.ReadAsync(context.Request.BodyReader, options.MaxBodyBytes, ct);
            if (spool is null) return tooLarge ? Problems.TooLarge(error!) : Problems.BadRequest(error!);
            await using (spool)
            {
                if (SubmissionRequests.CheckHeader(spool.Header, ndjson: true, options.DeliverySecrets, out var header) is { } bad) return Problems.BadRequest(bad);
                if (await CheckCallbackQueue(header, push, ct) is { } notPush) return notPush;
                var created = await chunks.Store.CreateAsync(header, spool.ReadBackAsync(ct), ct);
                chunks.Submitted(created);
                return Created(created);
            }
        }
        if (!type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return Problems.UnsupportedMediaType($"Send the submission as application/json or application/x-ndjson, not {type}.");
        var (body, tooLargeBody) = await RequestBody.ReadAsync(context, options.MaxBodyBytes);
        if (body is null) return tooLargeBody!;
        using (body)
        {
            if (body.IsEmpty) return Problems.BadRequest("The request body is empty: send {\"queue\": ..., \"chunks\": [...]} or chunks_ref.");
            if (!RequestBody.TryParse(body.Span, SubmissionBodyJson.Default.SubmitBody, out var request, out var parseError)) return parseError!;
            if (request is null) return Problems.BadRequest("The request body must be a JSON object, not null.");
            if (SubmissionRequests.CheckHeader(request, ndjson: false, options.DeliverySecrets, out var header) is { } bad) return Problems.BadRequest(bad);
            if (await CheckCallbackQueue(header, push, ct) is { } notPush) return notPush;
            IAsyncEnumerable<ChunkBody> items;
            if (request.ChunksRef is { } reference)
            {
                items = SubmissionRequests.InObjectStore(reference.Count!.Value);
            }
            else
            {
                var inline = request.Chunks ?? [];
                for (var i = 0; i < inline.Count; i++)
                {
                    if (inline[i] is null) return Problems.BadRequest($"Chunk {i} is null; send {{}} for a chunk without data.");
                    if (SubmissionRequests.CheckChunk(inline[i], i, out _) is { } badChunk) return Problems.BadRequest(badChunk);
                }
                items = SubmissionRequests.Inline(inline);
            }
            var created = await chunks.Store.CreateAsync(header, items, ct);
            chunks.Submitted(created);
            return Created(created);
        }
    }

    /// <summary>A callback with destinations needs a push queue: made one now (as an enqueue would), or 409 when it holds pull jobs.</summary>
    private static async Task<IResult?> CheckCallbackQueue(NewSubmission header, Delivery.PushQueues push, CancellationToken ct) =>
        header.OnComplete is { DestinationsJson: not null } callback && await push.EnsurePushAsync(callback.Queue, ct) is { } notPush
            ? Problems.Conflict($"on_complete: {notPush}")
            : null;

    /// <summary>A 409 that also carries the submission's state as a field, so clients need not parse the sentence.</summary>
    private static IResult ConflictWithState(string detail, SubmissionState state) =>
        Microsoft.AspNetCore.Http.Results.Problem(detail, statusCode: 409, title: "Conflict", extensions: new Dictionary<string, object?> { ["state"] = state.ToWire() });

    private static IResult Created(Submission submission) => new JsonWriterResult(201, w => SubmissionJson.Write(w, submission));

    private static async Task<IResult> Get(long id, ISubmissionStore store, CancellationToken ct) =>
        await store.GetAsync(id, ct) is { } submission
            ? new JsonWriterResult(200, w => SubmissionJson.Write(w, submission))
            : Problems.NotFound($"Submission {id} was not found.");

    private static async Task<IResult> Find(HttpContext context, ISubmissionStore store, CancellationToken ct)
    {
        var labels = new Dictionary<string, long>(StringComparer.Ordinal);
        string? queue = null, prefix = null;
        SubmissionState? state = null;
        long? before = null;
        var limit = 100;
        foreach (var (name, values) in context.Request.Query)
        {
            var value = values.ToString();
            if (name.StartsWith("label.", StringComparison.Ordinal))
            {
                var key = name["label.".Length..];
                if (SubmissionRequests.CheckLabelKey(key) is { } bad) return Problems.BadRequest(bad);
                if (!long.TryParse(value, out var number)) return Problems.BadRequest($"{name} must be an integer, not '{Http.JobRequests.Truncate(value)}'.");
                labels[key] = number;
                continue;
            }
            switch (name)
            {
                case "queue":
                    if (Http.JobRequests.CheckQueue(value) is { } badQueue) return Problems.BadRequest(badQueue);
                    queue = value;
                    break;
                case "prefix":
                    if (ObjectKeys.Check(value) is { } badPrefix) return Problems.BadRequest(badPrefix);
                    prefix = value.TrimEnd('/');
                    break;
                case "state":
                    if (!SubmissionJson.TryParseState(value, out var parsed))
                        return Problems.BadRequest($"state '{Http.JobRequests.Truncate(value)}' is not one of in_progress, completed, failed, cancelled.");
                    state = parsed;
                    break;
                case "cursor":
                    if (!long.TryParse(value, out var cursor) || cursor < 1) return Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.");
                    before = cursor;
                    break;
                case "limit":
                    if (!int.TryParse(value, out limit) || limit is < 1 or > 1000) return Problems.BadRequest("limit must be between 1 and 1000.");
                    break;
                default:
                    return Problems.BadRequest($"'{Http.JobRequests.Truncate(name)}' is not a filter: use label.<name>, state, prefix, queue, cursor or limit.");
            }
        }
        var found = await store.FindAsync(new SubmissionQuery { Queue = queue, Prefix = prefix, State = state, Labels = labels, BeforeId = before, Limit = limit }, ct);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("submissions");
            foreach (var submission in found) SubmissionJson.Write(w, submission);
            w.WriteEndArray();
            if (found.Count == limit) w.WriteString("next_cursor", found[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            else w.WriteNull("next_cursor");
            w.WriteEndObject();
        });
    }

    private static async Task<IResult> Results(long id, HttpContext context, ISubmissionStore store, IObjectStore objects, CancellationToken ct)
    {
        var partialText = context.Request.Query["partial"].ToString();
        if (partialText is not ("" or "true" or "false")) return Problems.BadRequest("partial must be true or false.");
        var submission = await store.GetAsync(id, ct);
        if (submission is null) return Problems.NotFound($"Submission {id} was not found.");
        if (submission.State != SubmissionState.Completed && partialText != "true")
        {
            return ConflictWithState(
                $"Submission {id} is {submission.State.ToWire()} ({submission.ChunksDone} of {submission.ChunksTotal} chunks done); its results can be read " +
                "once it is completed, or pass ?partial=true for the chunks finished so far.", submission.State);
        }
        return new ResultStream(store.ReadResultsAsync(id, ct), objects.Name);
    }

    /// <summary>Writes result lines as they are read (keyset batches in the store): memory holds one batch, whatever the size.</summary>
    private sealed class ResultStream(IAsyncEnumerable<ChunkResult> results, string objectStore) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = 200;
            httpContext.Response.ContentType = "application/x-ndjson";
            var pipe = httpContext.Response.BodyWriter;
            await using var w = new Utf8JsonWriter(pipe);
            var lines = 0;
            await foreach (var result in results)
            {
                SubmissionJson.Write(w, result, objectStore);
                await w.FlushAsync();
                pipe.Write("\n"u8);
                w.Reset(pipe);
                if (++lines % 256 == 0) await pipe.FlushAsync(httpContext.RequestAborted);
            }
            await pipe.FlushAsync(httpContext.RequestAborted);
        }
    }

    private static async Task<IResult> Cancel(long id, ChunkOperations chunks, CancellationToken ct)
    {
        var outcome = await chunks.Store.CancelAsync(id, ct);
        return outcome.Status switch
        {
            CancelStatus.NotFound => Problems.NotFound($"Submission {id} was not found."),
            CancelStatus.AlreadyTerminal => ConflictWithState(
                $"Submission {id} is already {outcome.Submission!.State.ToWire()}; only an in_progress submission can be cancelled.", outcome.Submission.State),
            _ => new JsonWriterResult(200, w => SubmissionJson.Write(w, outcome.Submission!)),
        };
    }

    private static async Task<IResult> Reserve(HttpContext context, ChunkOperations chunks, TimeProvider time, CancellationToken ct)
    {
        var (request, error) = await Parse(context, SubmissionBodyJson.Default.ReserveBody, 64 * 1024);
        if (request is null) return error!;
        if (ChunkOperations.CheckReserve(request.Queue, request.Max, request.WaitMs, request.LeaseMs, request.Strategy, request.PreferDistinct, owner: null,
                out var reserve, out var wait) is { } bad)
            return Problems.BadRequest(bad);
        var reserved = await chunks.ReserveAsync(reserve, wait, ct);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("chunks");
            foreach (var chunk in reserved) SubmissionJson.Write(w, chunk, chunks.Objects.Name);
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private static async Task<IResult> Complete(HttpContext context, ChunkOperations chunks, ServerOptions options, CancellationToken ct)
    {
        var (body, error) = await Parse(context, SubmissionBodyJson.Default.ChunkActionBody, options.MaxBodyBytes);
        if (body is null) return error!;
        if (ChunkOperations.CheckTarget(body.SubmissionId, body.Index, body.LeaseToken) is { } bad) return Problems.BadRequest(bad);
        if (body.Error is not null || body.ExtendMs is not null) return Problems.BadRequest("complete takes result or result_base64 and operations; error and extend_ms belong to fail and heartbeat.");
        return Answer(await chunks.CompleteAsync(body.SubmissionId!.Value, body.Index!.Value, body.LeaseToken!, body.Result, body.ResultBase64, body.Operations, ct));
    }

    private static async Task<IResult> Fail(HttpContext context, ChunkOperations chunks, CancellationToken ct)
    {
        var (body, error) = await Parse(context, SubmissionBodyJson.Default.ChunkActionBody, 64 * 1024);
        if (body is null) return error!;
        if (ChunkOperations.CheckTarget(body.SubmissionId, body.Index, body.LeaseToken) is { } bad) return Problems.BadRequest(bad);
        if (body.Result is not null || body.ResultBase64 is not null || body.Operations is not null || body.ExtendMs is not null)
            return Problems.BadRequest("fail takes error only; result, operations and extend_ms belong to complete and heartbeat.");
        return Answer(await chunks.FailAsync(body.SubmissionId!.Value, body.Index!.Value, body.LeaseToken!, body.Error, ct));
    }

    private static async Task<IResult> Heartbeat(HttpContext context, ChunkOperations chunks, CancellationToken ct)
    {
        var (body, error) = await Parse(context, SubmissionBodyJson.Default.ChunkActionBody, 64 * 1024);
        if (body is null) return error!;
        if (ChunkOperations.CheckTarget(body.SubmissionId, body.Index, body.LeaseToken) is { } bad) return Problems.BadRequest(bad);
        if (body.Result is not null || body.ResultBase64 is not null || body.Operations is not null || body.Error is not null)
            return Problems.BadRequest("heartbeat takes extend_ms only.");
        return Answer(await chunks.HeartbeatAsync(body.SubmissionId!.Value, body.Index!.Value, body.LeaseToken!, body.ExtendMs, ct));
    }

    private static async Task<IResult> Release(HttpContext context, ChunkOperations chunks, CancellationToken ct)
    {
        var (body, error) = await Parse(context, SubmissionBodyJson.Default.ChunkActionBody, 64 * 1024);
        if (body is null) return error!;
        if (ChunkOperations.CheckTarget(body.SubmissionId, body.Index, body.LeaseToken) is { } bad) return Problems.BadRequest(bad);
        if (body.Result is not null || body.ResultBase64 is not null || body.Operations is not null || body.Error is not null || body.ExtendMs is not null)
            return Problems.BadRequest("release takes submission_id, index and lease_token only.");
        return Answer(await chunks.ReleaseAsync(body.SubmissionId!.Value, body.Index!.Value, body.LeaseToken!, ct));
    }

    private static IResult Answer((int Status, string? Outcome, ChunkOutcome Result) answer) => answer.Status switch
    {
        200 => new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteString("outcome", answer.Outcome);
            w.WritePropertyName("submission");
            SubmissionJson.Write(w, answer.Result.Submission!);
            w.WriteEndObject();
        }),
        400 => Problems.BadRequest(answer.Result.Detail!),
        404 => Problems.NotFound(answer.Result.Detail!),
        _ => Problems.Conflict(answer.Result.Detail!),
    };

    private static async Task<IResult> GetObject(string key, IObjectStore objects, CancellationToken ct)
    {
        if (ObjectKeys.Check(key) is { } bad) return Problems.BadRequest(bad);
        var content = await objects.OpenReadAsync(key, ct);
        return content is null ? Problems.NotFound($"There is no object '{key}'.") : TypedResults.Stream(content, "application/octet-stream");
    }

    private static async Task<IResult> PutObject(string key, HttpContext context, IObjectStore objects, CancellationToken ct)
    {
        if (ObjectKeys.Check(key) is { } bad) return Problems.BadRequest(bad);
        // Streamed to the store: an object is not limited by the request-body limit.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = null;
        await objects.WriteAsync(key, context.Request.Body, ct);
        return TypedResults.NoContent();
    }

    private static async Task<(T?, IResult?)> Parse<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, long limit) where T : class
    {
        var (body, tooLarge) = await RequestBody.ReadAsync(context, limit);
        if (body is null) return (null, tooLarge);
        using (body)
        {
            if (body.IsEmpty) return (null, Problems.BadRequest("The request body is empty: send a JSON object."));
            if (!RequestBody.TryParse(body.Span, type, out var value, out var error)) return (null, error);
            return value is null ? (null, Problems.BadRequest("The request body must be a JSON object, not null.")) : (value, null);
        }
    }
}
