using System.Text.Json;

namespace Conveyor.Server.Http;

/// <summary>
/// Writes jobs straight to the response. Payload, result and errors are stored as JSON text and copied raw,
/// so a job is never parsed on its way out.
/// </summary>
internal static class JobJson
{
    // A leased batch writes these names a thousand times: encoded and escape-checked once here, not at every write.
    private static readonly JsonEncodedText Id = JsonEncodedText.Encode("id"), Queue = JsonEncodedText.Encode("queue"),
        Kind = JsonEncodedText.Encode("kind"), State = JsonEncodedText.Encode("state"), Payload = JsonEncodedText.Encode("payload"),
        Priority = JsonEncodedText.Encode("priority"), RunAt = JsonEncodedText.Encode("run_at"), Attempt = JsonEncodedText.Encode("attempt"),
        MaxAttempts = JsonEncodedText.Encode("max_attempts"), IdempotencyKey = JsonEncodedText.Encode("idempotency_key"),
        PartitionKey = JsonEncodedText.Encode("partition_key"), Tags = JsonEncodedText.Encode("tags"), Lease = JsonEncodedText.Encode("lease"),
        Token = JsonEncodedText.Encode("token"), Owner = JsonEncodedText.Encode("owner"), ExpiresAt = JsonEncodedText.Encode("expires_at"),
        Progress = JsonEncodedText.Encode("progress"), Result = JsonEncodedText.Encode("result"), Errors = JsonEncodedText.Encode("errors"),
        TraceParent = JsonEncodedText.Encode("trace_parent"), Destinations = JsonEncodedText.Encode("destinations"),
        CreatedAt = JsonEncodedText.Encode("created_at"), UpdatedAt = JsonEncodedText.Encode("updated_at"),
        StartedAt = JsonEncodedText.Encode("started_at"), FinishedAt = JsonEncodedText.Encode("finished_at"),
        At = JsonEncodedText.Encode("at"), Type = JsonEncodedText.Encode("type"), Message = JsonEncodedText.Encode("message");

    private static readonly JsonEncodedText[] States = [.. Enum.GetValues<JobState>().Select(state => JsonEncodedText.Encode(state.ToWire()))];

    public static void Write(Utf8JsonWriter w, Job job)
    {
        w.WriteStartObject();
        w.WriteNumber(Id, job.Id);
        w.WriteString(Queue, job.Queue);
        w.WriteString(Kind, job.Kind);
        w.WriteString(State, States[(int)job.State]);
        Raw(w, Payload, job.PayloadJson);
        w.WriteNumber(Priority, job.Priority);
        Time(w, RunAt, job.RunAt);
        w.WriteNumber(Attempt, job.Attempt);
        w.WriteNumber(MaxAttempts, job.MaxAttempts);
        String(w, IdempotencyKey, job.IdempotencyKey);
        String(w, PartitionKey, job.PartitionKey);
        w.WriteStartArray(Tags);
        foreach (var tag in job.Tags) w.WriteStringValue(tag);
        w.WriteEndArray();
        if (job.Lease is { } lease)
        {
            w.WriteStartObject(Lease);
            w.WriteString(Token, lease.Token);
            String(w, Owner, lease.Owner);
            Time(w, ExpiresAt, lease.ExpiresAt);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull(Lease);
        }
        Raw(w, Progress, job.ProgressJson);
        Raw(w, Result, job.ResultJson);
        w.WritePropertyName(Errors);
        w.WriteRawValue(job.ErrorsJson ?? "[]", skipInputValidation: true);
        String(w, TraceParent, job.TraceParent);
        Raw(w, Destinations, job.DestinationsJson);
        Time(w, CreatedAt, job.CreatedAt);
        Time(w, UpdatedAt, job.UpdatedAt);
        Time(w, StartedAt, job.StartedAt);
        Time(w, FinishedAt, job.FinishedAt);
        w.WriteEndObject();
    }

    public static void WriteEvent(Utf8JsonWriter w, JobEvent e)
    {
        w.WriteStartObject();
        Time(w, At, e.At);
        w.WriteString(Type, e.Type);
        w.WriteString(State, States[(int)e.State]);
        w.WriteNumber(Attempt, e.Attempt);
        String(w, Message, e.Message);
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
        Raw(w, Destinations, queue.Settings.DestinationsJson);
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

    private static void Raw(Utf8JsonWriter w, JsonEncodedText name, string? json)
    {
        w.WritePropertyName(name);
        // Stored text came from a parsed JsonElement, so it is valid JSON already.
        if (json is null) w.WriteNullValue(); else w.WriteRawValue(json, skipInputValidation: true);
    }

    private static void String(Utf8JsonWriter w, JsonEncodedText name, string? value)
    {
        if (value is null) w.WriteNull(name); else w.WriteString(name, value);
    }

    private static void Time(Utf8JsonWriter w, JsonEncodedText name, DateTimeOffset? value)
    {
        if (value is { } v) w.WriteString(name, v.UtcDateTime); else w.WriteNull(name);
    }
}

/// <summary>An IResult that writes JSON with a Utf8JsonWriter straight into the response pipe.</summary>
internal sealed class JsonWriterResult(int statusCode, Action<Utf8JsonWriter> write, string? location = null) : IResult
{
    public int StatusCode => statusCode;

    /// <summary>Writes the body to any writer: the jobs WebSocket nests it in its answer.</summary>
    public void WriteBody(Utf8JsonWriter writer) => write(writer);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = statusCode;
        httpContext.Response.ContentType = "application/json; charset=utf-8";
        if (location is not null) httpContext.Response.Headers.Location = location;
        var pipe = httpContext.Response.BodyWriter;
        await using (var w = new Utf8JsonWriter(pipe))
        {
            write(w);
        }
        await pipe.FlushAsync(httpContext.RequestAborted);
    }

    public static JsonWriterResult Job(Job job, int statusCode = 200, string? location = null) =>
        new(statusCode, w => JobJson.Write(w, job), location);

    public static JsonWriterResult Jobs(IReadOnlyList<Job> jobs) => new(200, w =>
    {
        w.WriteStartArray();
        foreach (var job in jobs) JobJson.Write(w, job);
        w.WriteEndArray();
    });
}
