using Conveyor.Server.Security;

using System.Text;
using System.Text.Json;

namespace Conveyor.Server.Http;

/// <summary>The v1 job and queue routes (docs/api.md). Endpoints validate and map outcomes; the store does the work.</summary>
internal static class JobEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        // The producer and worker routes are given their singletons here: a handler parameter taken from the request's
        // services makes ASP.NET Core create and dispose a DI scope for every request, a cost on the hottest routes.
        var s = JobServices.From(app.ServiceProvider);
        var (store, options) = (s.Store, s.Options);
        var v1 = app.MapGroup("/v1")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithTags("jobs");
        v1.MapPost("/queues/{queue}/jobs", (string queue, HttpContext context) => EnqueueOne(queue, context, s)).Requires(Access.Enqueue)
            .WithName("enqueueJob")
            .WithSummary("Enqueue one job")
            .Accepts<EnqueueBody>("application/json")
            .Produces<JobResponse>(201)
            .Produces<JobResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(409)
            .ProducesProblem(413);
        v1.MapPost("/queues/{queue}/jobs/batch", (string queue, HttpContext context) => EnqueueBatch(queue, context, s)).Requires(Access.Enqueue)
            .WithName("enqueueJobs")
            .WithSummary("Enqueue many jobs (JSON array, or NDJSON with Content-Type application/x-ndjson)")
            .Accepts<List<EnqueueBody>>("application/json", "application/x-ndjson")
            .Produces<BatchEnqueueResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(409)
            .ProducesProblem(413);
        v1.MapPost("/queues/{queue}/lease", (string queue, HttpContext context) => Lease(queue, context, s)).Requires(Access.Work)
            .WithName("leaseJobs")
            .WithSummary("Lease available jobs, long-polling up to wait_ms")
            .Accepts<LeaseBody>("application/json")
            .Produces<List<JobResponse>>(200)
            .Produces(204)
            .ProducesProblem(400)
            .ProducesProblem(409);
        v1.MapPost("/jobs/{id:long}/heartbeat", (long id, HttpContext context) => Heartbeat(id, context, s)).Requires(Access.Work)
            .WithName("heartbeatJob")
            .WithSummary("Extend a lease and record progress")
            .Accepts<HeartbeatBody>("application/json")
            .Produces<JobResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/jobs/{id:long}/complete", (long id, HttpContext context) => Complete(id, context, store, options)).Requires(Access.Work)
            .WithName("completeJob")
            .WithSummary("Complete a leased job with its result")
            .Accepts<CompleteBody>("application/json")
            .Produces<JobResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/jobs/{id:long}/fail", (long id, HttpContext context) => Fail(id, context, store, options)).Requires(Access.Work)
            .WithName("failJob")
            .WithSummary("Fail an attempt: retried with backoff, or dead")
            .Accepts<FailBody>("application/json")
            .Produces<JobResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/jobs/{id:long}/release", (long id, HttpContext context) => Release(id, context, store)).Requires(Access.Work)
            .WithName("releaseJob")
            .WithSummary("Hand a leased job back untouched")
            .Accepts<CompleteBody>("application/json")
            .Produces<JobResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/jobs/ack", (Func<HttpContext, Task<IResult>>)(context => Ack(context, s))).Requires(Access.Work)
            .WithName("ackJobs")
            .WithSummary("Complete, fail and release many jobs in one call")
            .Accepts<AckBody>("application/json")
            .Produces<AckResponse>(200)
            .ProducesProblem(400)
            .ProducesProblem(413);
        v1.MapGet("/jobs/{id:long}/result", Result).Requires(Access.Read)
            .WithName("getJobResult")
            .WithSummary("Wait up to wait_ms for a job to finish (RPC)")
            .Produces<JobResponse>(200)
            .Produces<JobResponse>(202)
            .ProducesProblem(400)
            .ProducesProblem(404);
        v1.MapPost("/jobs/{id:long}/cancel", Cancel).Requires(Access.Admin)
            .WithName("cancelJob")
            .WithSummary("Cancel an unfinished job")
            .Produces<JobResponse>(200)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapPost("/jobs/{id:long}/retry", Retry).Requires(Access.Admin)
            .WithName("retryJob")
            .WithSummary("Make a dead or cancelled job available again")
            .Produces<JobResponse>(200)
            .ProducesProblem(404)
            .ProducesProblem(409);
        v1.MapGet("/jobs/{id:long}", Get).Requires(Access.Read)
            .WithName("getJob")
            .WithSummary("Get one job")
            .Produces<JobResponse>(200)
            .ProducesProblem(404);
        v1.MapGet("/jobs/{id:long}/events", Events).Requires(Access.Read)
            .WithName("getJobEvents")
            .WithSummary("A job's history, oldest first")
            .Produces<List<JobEventResponse>>(200)
            .ProducesProblem(404);
        v1.MapGet("/jobs", Search).Requires(Access.Read)
            .WithName("searchJobs")
            .WithSummary("Search jobs, newest first, with keyset pagination")
            .Produces<JobPageResponse>(200)
            .ProducesProblem(400);
        v1.MapGet("/queues", Queues).Requires(Access.Read)
            .WithName("listQueues")
            .WithTags("queues")
            .WithSummary("List queues with job counts per state")
            .Produces<List<QueueResponse>>(200);
        v1.MapPost("/queues/{queue}/pause", (string queue, IJobStore store, CancellationToken ct) => SetPaused(queue, true, store, ct)).Requires(Access.Admin)
            .WithName("pauseQueue")
            .WithTags("queues")
            .WithSummary("Pause a queue: it accepts jobs but leases none")
            .Produces<QueueResponse>(200)
            .ProducesProblem(400);
        v1.MapPost("/queues/{queue}/resume", (string queue, IJobStore store, CancellationToken ct) => SetPaused(queue, false, store, ct)).Requires(Access.Admin)
            .WithName("resumeQueue")
            .WithTags("queues")
            .WithSummary("Resume a paused queue")
            .Produces<QueueResponse>(200)
            .ProducesProblem(400);
        v1.MapGet("/stats", Stats).Requires(Access.Read)
            .WithName("getStats")
            .WithTags("queues")
            .WithSummary("Totals per state, since-start counters and uptime")
            .Produces<StatsResponse>(200);
    }

    private static Task<IResult> EnqueueOne(string queue, HttpContext context, JobServices s) =>
        WithBody(context, s.Options.MaxJobBytes, body => JobOperations.EnqueueOneAsync(queue, body, JobCall.From(context), s));

    private static Task<IResult> EnqueueBatch(string queue, HttpContext context, JobServices s)
    {
        var ndjson = context.Request.ContentType is { } type &&
            (type.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase) ||
             type.StartsWith("application/jsonl", StringComparison.OrdinalIgnoreCase));
        return WithBody(context, s.Options.MaxBodyBytes, body => JobOperations.EnqueueBatchAsync(queue, body, ndjson, JobCall.From(context), s));
    }

    private static Task<IResult> Lease(string queue, HttpContext context, JobServices s) =>
        WithBody(context, 64 * 1024, body => JobOperations.LeaseAsync(queue, body, JobCall.From(context), context.RequestAborted, s));

    private static Task<IResult> Heartbeat(long id, HttpContext context, JobServices s) =>
        WithBody(context, 64 * 1024, body => JobOperations.HeartbeatAsync(id, body, JobCall.From(context), s));

    private static Task<IResult> Ack(HttpContext context, JobServices s) =>
        WithBody(context, s.Options.MaxBodyBytes, body => JobOperations.AckAsync(body, JobCall.From(context), s));

    /// <summary>Reads the body (413 past the limit), runs the operation on it, and returns the pooled buffer.</summary>
    private static async Task<IResult> WithBody(HttpContext context, long limit, Func<ReadOnlyMemory<byte>, Task<JobAnswer>> operation)
    {
        var (body, tooLarge) = await RequestBody.ReadAsync(context, limit);
        if (body is null) return tooLarge!;
        using (body) return (await operation(body.Memory)).Result;
    }

    private static async Task<IResult> Complete(long id, HttpContext context, IJobStore store, ServerOptions options)
    {
        var (request, error) = await ParseSmall(context, BodyJson.Default.CompleteBody, options.MaxJobBytes);
        if (request is null) return error!;
        if (!JobRequests.TryComplete(id, request, out var ack, out var invalid)) return Problems.BadRequest(invalid!);
        using var span = ServerTelemetry.StartSpan("conveyor.complete", context);
        span?.SetTag("conveyor.job_id", id);
        var outcome = (await store.JobAckManyAsync([ack], context.RequestAborted))[0];
        return await JobOperations.JobOrProblemAsync(outcome, store);
    }

    private static async Task<IResult> Fail(long id, HttpContext context, IJobStore store, ServerOptions options)
    {
        var (request, error) = await ParseSmall(context, BodyJson.Default.FailBody, options.MaxJobBytes);
        if (request is null) return error!;
        if (!JobRequests.TryFail(id, request, out var ack, out var invalid)) return Problems.BadRequest(invalid!);
        using var span = ServerTelemetry.StartSpan("conveyor.fail", context);
        span?.SetTag("conveyor.job_id", id);
        var outcome = (await store.JobAckManyAsync([ack], context.RequestAborted))[0];
        return await JobOperations.JobOrProblemAsync(outcome, store);
    }

    private static async Task<IResult> Release(long id, HttpContext context, IJobStore store)
    {
        var (request, error) = await ParseSmall(context, BodyJson.Default.CompleteBody);
        if (request is null) return error!;
        if (string.IsNullOrEmpty(request.LeaseToken)) return Problems.BadRequest($"lease_token is required to release job {id}.");
        var outcome = (await store.JobAckManyAsync([AckRequest.Release(id, request.LeaseToken)], context.RequestAborted))[0];
        return await JobOperations.JobOrProblemAsync(outcome, store);
    }

    /// <summary>RPC: waits up to wait_ms for the job to finish. 200 + job once finished, 202 + job while it is not yet.</summary>
    private static async Task<IResult> Result(long id, HttpContext context, IJobStore store, IHostApplicationLifetime lifetime)
    {
        long waitMs = 0;
        if (context.Request.Query["wait_ms"] is { Count: > 0 } text &&
            (!long.TryParse(text, out waitMs) || waitMs < 0 || waitMs > JobLimits.MaxWait.TotalMilliseconds))
            return Problems.BadRequest($"wait_ms must be a number between 0 and {(long)JobLimits.MaxWait.TotalMilliseconds}.");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        Job? job;
        try
        {
            job = await store.JobWaitFinishedAsync(id, TimeSpan.FromMilliseconds(waitMs), stop.Token);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            job = await store.JobGetAsync(id, CancellationToken.None);
        }
        if (job is null) return Problems.NotFound($"Job {id} was not found.");
        return JsonWriterResult.Job(job, job.State.IsFinished() ? 200 : 202);
    }

    private static async Task<IResult> Cancel(long id, IJobStore store, CancellationToken ct) =>
        await JobOperations.JobOrProblemAsync(await store.JobCancelAsync(id, ct), store);

    private static async Task<IResult> Retry(long id, IJobStore store, CancellationToken ct) =>
        await JobOperations.JobOrProblemAsync(await store.JobRetryAsync(id, ct), store);

    private static async Task<IResult> Get(long id, IJobStore store, CancellationToken ct) =>
        await store.JobGetAsync(id, ct) is { } job ? JsonWriterResult.Job(job) : Problems.NotFound($"Job {id} was not found.");

    private static async Task<IResult> Events(long id, IJobStore store, CancellationToken ct)
    {
        var events = await store.JobEventsAsync(id, ct);
        if (events is null) return Problems.NotFound($"Job {id} was not found.");
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartArray();
            foreach (var e in events) JobJson.WriteEvent(w, e);
            w.WriteEndArray();
        });
    }

    private static async Task<IResult> Search(HttpContext context, IJobStore store)
    {
        var q = context.Request.Query;
        string? queue = q["queue"], stateText = q["state"], kind = q["kind"], tag = q["tag"], text = q["text"], cursor = q["cursor"], limitText = q["limit"];
        if (text is { Length: 0 or > 256 }) return Problems.BadRequest("text must be 1-256 characters: the payload text to look for.");
        if (queue is not null && JobRequests.CheckQueue(queue) is { } bad) return Problems.BadRequest(bad);
        JobState? state = null;
        if (stateText is not null)
        {
            if (!JobStates.TryParse(stateText, out var parsed))
                return Problems.BadRequest($"state '{JobRequests.Truncate(stateText)}' is not one of scheduled, available, running, completed, dead, cancelled.");
            state = parsed;
        }
        long? before = null;
        if (cursor is not null)
        {
            if (!long.TryParse(cursor, out var c) || c < 1) return Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.");
            before = c;
        }
        var limit = 50;
        if (limitText is not null && (!int.TryParse(limitText, out limit) || limit < 1 || limit > JobLimits.MaxSearchLimit))
            return Problems.BadRequest($"limit must be a number between 1 and {JobLimits.MaxSearchLimit}.");
        var page = await store.JobSearchAsync(new JobQuery { Queue = queue, State = state, Kind = kind, Tag = tag, Text = text, BeforeId = before, Limit = limit },
            context.RequestAborted);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("jobs");
            foreach (var job in page.Jobs) JobJson.Write(w, job);
            w.WriteEndArray();
            if (page.NextBeforeId is { } next) w.WriteString("next_cursor", next.ToString(System.Globalization.CultureInfo.InvariantCulture));
            else w.WriteNull("next_cursor");
            w.WriteEndObject();
        });
    }

    private static async Task<IResult> Queues(IJobStore store, CancellationToken ct)
    {
        var queues = await store.QueueListAsync(ct);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartArray();
            foreach (var queue in queues) JobJson.WriteQueue(w, queue);
            w.WriteEndArray();
        });
    }

    private static async Task<IResult> SetPaused(string queue, bool paused, IJobStore store, CancellationToken ct)
    {
        if (JobRequests.CheckQueue(queue) is { } bad) return Problems.BadRequest(bad);
        var info = await store.QueueSetPausedAsync(queue, paused, ct);
        return new JsonWriterResult(200, w => JobJson.WriteQueue(w, info));
    }

    private static async Task<IResult> Stats(IJobStore store, ServerClock clock, CancellationToken ct)
    {
        var stats = await store.StatsAsync(ct);
        var total = stats.Queues.Aggregate(StateCounts.Zero, (sum, q) => sum.Add(q.Counts));
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("uptime_ms", clock.UptimeMs);
            w.WriteNumber("queues", stats.Queues.Count);
            JobJson.WriteCounts(w, "counts", total);
            w.WriteNumber("enqueued", stats.EnqueuedSinceStart);
            w.WriteNumber("completed", stats.CompletedSinceStart);
            w.WriteNumber("failed", stats.FailedSinceStart);
            w.WriteEndObject();
        });
    }

    /// <summary>Reads a small JSON body; an empty body is refused since these routes need a lease token.</summary>
    private static async Task<(T?, IResult?)> ParseSmall<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, long limit = 64 * 1024)
        where T : class
    {
        var (body, tooLarge) = await RequestBody.ReadAsync(context, limit);
        if (body is null) return (null, tooLarge);
        using (body) return JobOperations.TryParseObject(body.Span, type, out var value, out var error) ? (value, null) : (null, error);
    }
}
