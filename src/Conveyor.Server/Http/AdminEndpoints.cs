using System.Text.Json;
using Conveyor.Server.Scheduling;
using Conveyor.Server.Security;

namespace Conveyor.Server.Http;

internal sealed class QueueSettingsBody
{
    public int? MaxRunning { get; set; }
    public double? RatePerSecond { get; set; }
    public long? RetentionMs { get; set; }
    /// <summary>Null keeps the current value (a push queue stays one when its limits change).</summary>
    public bool? Push { get; set; }
    /// <summary>Default destinations of a push queue; null keeps them, [] removes them.</summary>
    public JsonElement? Destinations { get; set; }
}

internal sealed class ScheduleJobBody
{
    public string? Kind { get; set; }
    public JsonElement? Payload { get; set; }
    public int? Priority { get; set; }
    public int? MaxAttempts { get; set; }
    public List<string>? Tags { get; set; }
}

internal sealed class ScheduleBody
{
    public string? Cron { get; set; }
    public string? TimeZone { get; set; }
    public string? Queue { get; set; }
    public ScheduleJobBody? Job { get; set; }
    public bool? Paused { get; set; }
}

internal sealed record QueueSettingsResponse(int? MaxRunning, double? RatePerSecond, long? RetentionMs, bool Push, JsonElement? Destinations);

internal sealed record ScheduleJobResponse(string Kind, JsonElement? Payload, int Priority, int MaxAttempts, IReadOnlyList<string> Tags);

internal sealed record ScheduleResponse(
    string Name, string Cron, string TimeZone, string Queue, ScheduleJobResponse Job, bool Paused, DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt, DateTimeOffset? LastFiredFor, DateTimeOffset? NextRunAt);

/// <summary>Job deletion, queue settings (limits, retention) and cron schedules.</summary>
internal static class AdminEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        v1.MapDelete("/jobs/{id:long}", DeleteJob).Requires(Access.Admin)
            .WithName("deleteJob").WithTags("jobs")
            .WithSummary("Delete a job that is not running, with its history")
            .Produces(204).ProducesProblem(404).ProducesProblem(409);
        v1.MapPut("/queues/{queue}/settings", Configure).Requires(Access.Admin)
            .WithName("configureQueue").WithTags("queues")
            .WithSummary("Set a queue's concurrency limit, rate limit and retention (null clears one)")
            .Accepts<QueueSettingsBody>("application/json").Produces<QueueResponse>(200).ProducesProblem(400);
        v1.MapGet("/schedules", List).Requires(Access.Read)
            .WithName("listSchedules").WithTags("schedules")
            .WithSummary("Cron schedules with their next run").Produces<List<ScheduleResponse>>(200);
        v1.MapGet("/schedules/{name}", Get).Requires(Access.Read)
            .WithName("getSchedule").WithTags("schedules")
            .WithSummary("One cron schedule").Produces<ScheduleResponse>(200).ProducesProblem(404);
        v1.MapPut("/schedules/{name}", Upsert).Requires(Access.Admin)
            .WithName("putSchedule").WithTags("schedules")
            .WithSummary("Create or replace a cron schedule that enqueues a job at each occurrence")
            .Accepts<ScheduleBody>("application/json").Produces<ScheduleResponse>(201).Produces<ScheduleResponse>(200).ProducesProblem(400);
        v1.MapDelete("/schedules/{name}", Delete).Requires(Access.Admin)
            .WithName("deleteSchedule").WithTags("schedules")
            .WithSummary("Delete a cron schedule").Produces(204).ProducesProblem(404);
    }

    private static async Task<IResult> DeleteJob(long id, IJobStore store, CancellationToken ct)
    {
        var outcome = await store.JobDeleteAsync(id, ct);
        return outcome.IsOk ? Results.NoContent() : Problems.From(outcome);
    }

    private static async Task<IResult> Configure(string queue, HttpContext context, IJobStore store, ServerOptions options, Delivery.PushQueues push)
    {
        if (JobRequests.CheckQueue(queue) is { } bad) return Problems.BadRequest(bad);
        var (body, error) = await ReadAsync(context, BodyJson.Default.QueueSettingsBody);
        if (body is null) return error!;
        if (body.MaxRunning is < 1 or > 1_000_000) return Problems.BadRequest($"max_running must be between 1 and 1000000, or null for no limit; got {body.MaxRunning}.");
        if (body.RatePerSecond is { } rate && (double.IsNaN(rate) || rate <= 0 || rate > 1_000_000))
            return Problems.BadRequest($"rate_per_second must be above 0 and at most 1000000, or null for no limit; got {rate}.");
        if (body.RetentionMs is < 0 or (> 0 and < 1000))
            return Problems.BadRequest($"retention_ms must be 0 (delete finished jobs right away), at least 1000, or null for the server default; got {body.RetentionMs}.");
        // Push mode and default destinations are kept when not given, so changing a push queue's limits keeps it a push queue.
        var current = (await store.QueueListAsync(context.RequestAborted)).FirstOrDefault(q => q.Name == queue)?.Settings ?? QueueSettings.None;
        var destinations = current.DestinationsJson;
        if (body.Destinations is { ValueKind: JsonValueKind.Array } list && list.GetArrayLength() == 0)
            destinations = null;
        else if (body.Destinations is not null &&
                 !Delivery.Destinations.TryNormalize(null, body.Destinations, options.DeliverySecrets, out destinations, out var invalid))
            return Problems.BadRequest(invalid!);
        var isPush = body.Push ?? (current.Push || destinations is not null);
        if (!isPush && destinations is not null)
            return Problems.BadRequest("Default destinations belong to push queues: leave push out or set it to true.");
        if (isPush != current.Push && await HasUnfinishedJobs(store, queue, context.RequestAborted))
            return Problems.Conflict(isPush
                ? $"Queue '{queue}' holds jobs that workers lease; it can become a push queue only once it is empty."
                : $"Queue '{queue}' holds jobs the server is to deliver; it can stop being a push queue only once they are finished.");
        var info = await store.QueueConfigureAsync(queue, new QueueSettings
        {
            MaxRunning = body.MaxRunning,
            RatePerSecond = body.RatePerSecond,
            Retention = body.RetentionMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null,
            Push = isPush,
            DestinationsJson = destinations,
        }, context.RequestAborted);
        push.Observe(queue, info.Settings);
        return new JsonWriterResult(200, w => JobJson.WriteQueue(w, info));
    }

    private static async Task<bool> HasUnfinishedJobs(IJobStore store, string queue, CancellationToken ct)
    {
        var info = (await store.QueueListAsync(ct)).FirstOrDefault(q => q.Name == queue);
        return info is not null && info.Counts.Scheduled + info.Counts.Available + info.Counts.Running > 0;
    }

    private static async Task<IResult> List(IJobStore store, TimeProvider time, CancellationToken ct)
    {
        var schedules = await store.ScheduleListAsync(ct);
        var now = time.GetUtcNow();
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartArray();
            foreach (var schedule in schedules) WriteSchedule(w, schedule, now);
            w.WriteEndArray();
        });
    }

    private static async Task<IResult> Get(string name, IJobStore store, TimeProvider time, CancellationToken ct) =>
        (await store.ScheduleListAsync(ct)).FirstOrDefault(s => s.Name == name) is { } schedule
            ? new JsonWriterResult(200, w => WriteSchedule(w, schedule, time.GetUtcNow()))
            : Problems.NotFound($"Schedule '{JobRequests.Truncate(name)}' was not found.");

    private static async Task<IResult> Upsert(string name, HttpContext context, IJobStore store, TimeProvider time, CronScheduler scheduler)
    {
        if (!JobLimits.IsValidQueueName(name))
            return Problems.BadRequest($"'{JobRequests.Truncate(name)}' is not a valid schedule name: use 1-{JobLimits.MaxNameLength} letters, digits, '.', '_', '-' or ':'.");
        var (body, error) = await ReadAsync(context, BodyJson.Default.ScheduleBody);
        if (body is null) return error!;
        if (!CronInput.Check(body.Cron, out var cronError)) return Problems.BadRequest(cronError);
        var zone = body.TimeZone ?? "UTC";
        if (!CronScheduler.TryZone(zone, out _)) return Problems.BadRequest($"time_zone '{JobRequests.Truncate(zone)}' is not a known IANA time zone such as Europe/Berlin.");
        if (body.Queue is null || JobRequests.CheckQueue(body.Queue) is { } badQueue)
            return Problems.BadRequest(body.Queue is null ? "queue is required: the queue each occurrence's job goes to." : JobRequests.CheckQueue(body.Queue)!);
        var job = body.Job ?? new ScheduleJobBody();
        var template = new EnqueueBody { Kind = job.Kind, Payload = job.Payload, Priority = job.Priority, MaxAttempts = job.MaxAttempts, Tags = job.Tags };
        if (!JobRequests.TryBuild(body.Queue, template, time.GetUtcNow(), null, out var newJob, out var invalid)) return Problems.BadRequest($"job: {invalid}");
        var existed = (await store.ScheduleListAsync(context.RequestAborted)).Any(s => s.Name == name);
        var stored = await store.ScheduleUpsertAsync(new Schedule
        {
            Name = name,
            Cron = body.Cron!,
            TimeZone = zone,
            Template = newJob,
            Paused = body.Paused ?? false,
        }, context.RequestAborted);
        scheduler.Wake(); // its first occurrence may come before the scheduler meant to look again
        return new JsonWriterResult(existed ? 200 : 201, w => WriteSchedule(w, stored, time.GetUtcNow()));
    }

    private static async Task<IResult> Delete(string name, IJobStore store, CancellationToken ct) =>
        await store.ScheduleDeleteAsync(name, ct) ? Results.NoContent() : Problems.NotFound($"Schedule '{JobRequests.Truncate(name)}' was not found.");

    private static void WriteSchedule(Utf8JsonWriter w, Schedule s, DateTimeOffset now)
    {
        w.WriteStartObject();
        w.WriteString("name", s.Name);
        w.WriteString("cron", s.Cron);
        w.WriteString("time_zone", s.TimeZone);
        w.WriteString("queue", s.Template.Queue);
        w.WriteStartObject("job");
        w.WriteString("kind", s.Template.Kind);
        w.WritePropertyName("payload");
        w.WriteRawValue(s.Template.PayloadJson ?? "null", skipInputValidation: true);
        w.WriteNumber("priority", s.Template.Priority);
        w.WriteNumber("max_attempts", s.Template.MaxAttempts);
        w.WriteStartArray("tags");
        foreach (var tag in s.Template.Tags) w.WriteStringValue(tag);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteBoolean("paused", s.Paused);
        w.WriteString("created_at", s.CreatedAt.UtcDateTime);
        w.WriteString("updated_at", s.UpdatedAt.UtcDateTime);
        if (s.LastFiredFor is { } last) w.WriteString("last_fired_for", last.UtcDateTime); else w.WriteNull("last_fired_for");
        if (!s.Paused && CronScheduler.NextRun(s, now) is { } next) w.WriteString("next_run_at", next.UtcDateTime); else w.WriteNull("next_run_at");
        w.WriteEndObject();
    }

    private static async Task<(T?, IResult?)> ReadAsync<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) where T : class
    {
        var (body, tooLarge) = await RequestBody.ReadAsync(context, 1024 * 1024);
        if (body is null) return (null, tooLarge);
        using (body)
        {
            if (body.IsEmpty) return (null, Problems.BadRequest("The request body is empty: send a JSON object."));
            if (!RequestBody.TryParse(body.Span, type, out var value, out var error)) return (null, error);
            return value is null ? (null, Problems.BadRequest("The request body must be a JSON object, not null.")) : (value, null);
        }
    }
}

internal static class CronInput
{
    public static bool Check(string? cron, out string error)
    {
        if (cron is null)
        {
            error = "cron is required, e.g. \"0 3 * * *\" for 03:00 every day.";
            return false;
        }
        return Conveyor.Scheduling.CronExpression.TryParse(cron, out _, out error);
    }
}
