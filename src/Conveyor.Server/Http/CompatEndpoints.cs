using Conveyor.Server.Security;

namespace Conveyor.Server.Http;

/// <summary>
/// The simple HTTP job-queue protocol on the same engine, in its own queue. Types map to priorities
/// (TIME_CRITICAL before NOT_TIME_CRITICAL, then oldest first); a dequeued job stays IN_PROGRESS until concluded.
/// Errors are <c>{"message": "…"}</c> as that protocol expects.
/// </summary>
internal static class CompatEndpoints
{
    public const string Queue = "compat";
    private const string TimeCritical = "TIME_CRITICAL";
    private const string NotTimeCritical = "NOT_TIME_CRITICAL";
    // The protocol has no heartbeat, so a dequeued job holds its lease until it is concluded or the server restarts.
    private static readonly TimeSpan InProgressLease = TimeSpan.FromDays(3650);

    public static void Map(IEndpointRouteBuilder app)
    {
        // Not part of the v1 contract, so not in the OpenAPI document.
        app = app.MapGroup("").ExcludeFromDescription();
        app.MapPut("/jobs/enqueue", Enqueue).Requires(Access.Enqueue);
        app.MapPost("/jobs/dequeue", Dequeue).Requires(Access.Work);
        app.MapPost("/jobs/conclude/{id:long}", Conclude).Requires(Access.Work);
        app.MapPost("/jobs/cancel", Cancel).Requires(Access.Admin);
        app.MapGet("/jobs/stats", Stats).Requires(Access.Read);
        app.MapGet("/jobs/{id:long}", Get).Requires(Access.Read);
    }

    private static IResult Message(int status, string message) =>
        Results.Json(new Dictionary<string, string> { ["message"] = message }, statusCode: status);

    private static IResult Job(long id, string type, JobState state) => Results.Json(
        new Dictionary<string, object> { ["ID"] = id, ["Type"] = type, ["Status"] = StatusOf(state) });

    private static string StatusOf(JobState state) => state switch
    {
        JobState.Scheduled or JobState.Available => "QUEUED",
        JobState.Running => "IN_PROGRESS",
        JobState.Completed => "CONCLUDED",
        JobState.Cancelled => "CANCELLED",
        _ => "FAILED",
    };

    private static async Task<IResult> Enqueue(HttpContext context, IJobStore store)
    {
        var (body, tooLarge) = await RequestBody.ReadAsync(context, 64 * 1024);
        if (body is null) return Message(413, "The request body is too large.");
        using (body)
        {
            if (!RequestBody.TryParse(body.Span, BodyJson.Default.CompatEnqueueBody, out var request, out _) || request is null)
                return Message(400, "The body must be a JSON object like {\"Type\": \"TIME_CRITICAL\"}.");
            var priority = request.Type switch { TimeCritical => 1, NotTimeCritical => 0, _ => (int?)null };
            if (priority is null) return Message(400, $"Type must be {TimeCritical} or {NotTimeCritical}.");
            var inserted = await store.JobInsertManyAsync(
                [new NewJob { Queue = Queue, Kind = request.Type!, Priority = priority.Value, MaxAttempts = 1 }], context.RequestAborted);
            return Results.Json(new Dictionary<string, long> { ["ID"] = inserted[0].Id });
        }
    }

    private static async Task<IResult> Dequeue(IJobStore store, CancellationToken ct)
    {
        var jobs = await store.JobLeaseAvailableAsync(new LeaseRequest(Queue, 1, InProgressLease, TimeSpan.Zero, "compat"), ct);
        if (jobs.Count == 0) return Message(400, "No job is queued.");
        return Job(jobs[0].Id, jobs[0].Kind, JobState.Running);
    }

    private static async Task<IResult> Conclude(long id, IJobStore store, CancellationToken ct)
    {
        if (await store.JobGetAsync(id, ct) is not { Queue: Queue } job) return Message(404, $"Job {id} was not found.");
        if (job.State != JobState.Running) return Message(409, $"Job {id} is {StatusOf(job.State)}, not IN_PROGRESS.");
        var outcome = (await store.JobAckManyAsync([AckRequest.Complete(id, job.Lease?.Token)], ct))[0];
        return outcome.Status switch
        {
            OutcomeStatus.Ok => Job(id, job.Kind, JobState.Completed),
            OutcomeStatus.NotFound => Message(404, $"Job {id} was not found."),
            _ => Message(409, $"Job {id} is not IN_PROGRESS."),
        };
    }

    private static async Task<IResult> Cancel(HttpContext context, IJobStore store)
    {
        var (body, _) = await RequestBody.ReadAsync(context, 64 * 1024);
        if (body is null) return Message(413, "The request body is too large.");
        using (body)
        {
            if (!RequestBody.TryParse(body.Span, BodyJson.Default.CompatCancelBody, out var request, out _) || request?.Id is not { } id)
                return Message(400, "The body must be a JSON object like {\"ID\": 1}.");
            if (await store.JobGetAsync(id, context.RequestAborted) is not { Queue: Queue } job) return Message(404, $"Job {id} was not found.");
            var outcome = await store.JobCancelAsync(id, context.RequestAborted);
            return outcome.Status switch
            {
                OutcomeStatus.Ok => Job(id, job.Kind, JobState.Cancelled),
                OutcomeStatus.NotFound => Message(404, $"Job {id} was not found."),
                _ => Message(409, $"Job {id} is {StatusOf(outcome.State ?? job.State)} and cannot be cancelled."),
            };
        }
    }

    private static async Task<IResult> Get(long id, IJobStore store, CancellationToken ct) =>
        await store.JobGetAsync(id, ct) is { Queue: Queue } job ? Job(id, job.Kind, job.State) : Message(404, $"Job {id} was not found.");

    private static async Task<IResult> Stats(IJobStore store, ServerClock clock, CancellationToken ct)
    {
        var queue = (await store.QueueListAsync(ct)).FirstOrDefault(q => q.Name == Queue);
        var counts = queue?.Counts ?? StateCounts.Zero;
        return Results.Json(new Dictionary<string, long>
        {
            ["Queued"] = counts.Scheduled + counts.Available,
            ["InProgress"] = counts.Running,
            ["Concluded"] = counts.Completed,
            ["UptimeMillis"] = clock.UptimeMs,
        });
    }
}
