using System.Text.Json;

namespace Conveyor.Server.Http;

/// <summary>
/// Writes jobs straight to the response. Payload, result and errors are stored as JSON text and copied raw,
/// so a job is never parsed on its way out.
/// </summary>
internal static class JobJson
{
    public static void Write(Utf8JsonWriter w, Job job)
    {
        w.WriteStartObject();
        w.WriteNumber("id", job.Id);
        w.WriteString("queue", job.Queue);
        w.WriteString("kind", job.Kind);
        w.WriteString("state", job.State.ToWire());
        Raw(w, "payload", job.PayloadJson);
        w.WriteNumber("priority", job.Priority);
        Time(w, "run_at", job.RunAt);
        w.WriteNumber("attempt", job.Attempt);
        w.WriteNumber("max_attempts", job.MaxAttempts);
        String(w, "idempotency_key", job.IdempotencyKey);
        String(w, "partition_key", job.PartitionKey);
        w.WriteStartArray("tags");
        foreach (var tag in job.Tags) w.WriteStringValue(tag);
        w.WriteEndArray();
        if (job.Lease is { } lease)
        {
            w.WriteStartObject("lease");
            w.WriteString("token", lease.Token);
            String(w, "owner", lease.Owner);
            Time(w, "expires_at", lease.ExpiresAt);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("lease");
        }
        Raw(w, "progress", job.ProgressJson);
        Raw(w, "result", job.ResultJson);
        w.WritePropertyName("errors");
        w.WriteRawValue(job.ErrorsJson ?? "[]", skipInputValidation: true);
        String(w, "trace_parent", job.TraceParent);
        Raw(w, "destinations", job.DestinationsJson);
        Time(w, "created_at", job.CreatedAt);
        Time(w, "updated_at", job.UpdatedAt);
        Time(w, "started_at", job.StartedAt);
        Time(w, "finished_at", job.FinishedAt);
        w.WriteEndObject();
    }

    public static void WriteEvent(Utf8JsonWriter w, JobEvent e)
    {
        w.WriteStartObject();
        Time(w, "at", e.At);
        w.WriteString("type", e.Type);
        w.WriteString("state", e.State.ToWire());
        w.WriteNumber("attempt", e.Attempt);
        String(w, "message", e.Message);
        w.WriteEndObject();
    }

    public static void WriteQueue(Utf8JsonWriter w, QueueInfo queue)
    {
        w.WriteStartObject();
        w.WriteString("name", queue.Name);
        w.WriteBoolean("paused", queue.Paused);
        WriteCounts(w, "counts", queue.Counts);
        w.WriteStartObject("settings");
        if (queue.Settings.MaxRunning is { } max) w.WriteNumber("max_running", max); else w.WriteNull("max_running");
        if (queue.Settings.RatePerSecond is { } rate) w.WriteNumber("rate_per_second", rate); else w.WriteNull("rate_per_second");
        if (queue.Settings.Retention is { } keep) w.WriteNumber("retention_ms", (long)keep.TotalMilliseconds); else w.WriteNull("retention_ms");
        w.WriteBoolean("push", queue.Settings.Push);
        Raw(w, "destinations", queue.Settings.DestinationsJson);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    public static void WriteCounts(Utf8JsonWriter w, string name, StateCounts c)
    {
        w.WriteStartObject(name);
        w.WriteNumber("scheduled", c.Scheduled);
        w.WriteNumber("available", c.Available);
        w.WriteNumber("running", c.Running);
        w.WriteNumber("completed", c.Completed);
        w.WriteNumber("dead", c.Dead);
        w.WriteNumber("cancelled", c.Cancelled);
        w.WriteEndObject();
    }

    private static void Raw(Utf8JsonWriter w, string name, string? json)
    {
        w.WritePropertyName(name);
        // Stored text came from a parsed JsonElement, so it is valid JSON already.
        if (json is null) w.WriteNullValue(); else w.WriteRawValue(json, skipInputValidation: true);
    }

    private static void String(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name); else w.WriteString(name, value);
    }

    private static void Time(Utf8JsonWriter w, string name, DateTimeOffset? value)
    {
        if (value is { } v) w.WriteString(name, v.UtcDateTime); else w.WriteNull(name);
    }
}

/// <summary>An IResult that writes JSON with a Utf8JsonWriter straight into the response pipe.</summary>
internal sealed class JsonWriterResult(int statusCode, Action<Utf8JsonWriter> write) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = statusCode;
        httpContext.Response.ContentType = "application/json; charset=utf-8";
        var pipe = httpContext.Response.BodyWriter;
        await using (var w = new Utf8JsonWriter(pipe))
        {
            write(w);
        }
        await pipe.FlushAsync(httpContext.RequestAborted);
    }

    public static IResult Job(Job job, int statusCode = 200) => new JsonWriterResult(statusCode, w => JobJson.Write(w, job));

    public static IResult Jobs(IReadOnlyList<Job> jobs) => new JsonWriterResult(200, w =>
    {
        w.WriteStartArray();
        foreach (var job in jobs) JobJson.Write(w, job);
        w.WriteEndArray();
    });
}
