using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Conveyor.Server.Http;

/// <summary>The singletons the producer and worker operations use, resolved once rather than per call.</summary>
internal sealed record JobServices(IJobStore Store, ServerOptions Options, TimeProvider Time, Delivery.PushQueues Push, IHostApplicationLifetime Lifetime)
{
    public static JobServices From(IServiceProvider services) => new(
        services.GetRequiredService<IJobStore>(),
        services.GetRequiredService<ServerOptions>(),
        services.GetRequiredService<TimeProvider>(),
        services.GetRequiredService<Delivery.PushQueues>(),
        services.GetRequiredService<IHostApplicationLifetime>());
}

/// <summary>What an operation needs from the call that carried it, whichever transport that was.</summary>
internal readonly record struct JobCall(string? TraceParent, string? TraceState, CancellationToken Aborted)
{
    // tracestate matters only to a span, and there is none while nothing listens: not looked up on every request.
    public static JobCall From(HttpContext context) => new(
        ServerTelemetry.TraceHeader(context, "traceparent"),
        ServerTelemetry.Source.HasListeners() ? ServerTelemetry.TraceHeader(context, "tracestate") : null,
        context.RequestAborted);
}

/// <summary>An operation's answer, with what a connection that tracks its leases needs to know.</summary>
internal readonly record struct JobAnswer(IResult Result, IReadOnlyList<Job>? Leased = null, IReadOnlyList<JobOutcome>? Acked = null)
{
    public static implicit operator JobAnswer(JsonWriterResult result) => new(result);
}

/// <summary>
/// The producer and worker operations on a body already read: the HTTP routes (JobEndpoints) and the jobs WebSocket
/// (JobSocket) call the same code, so both validate, answer and fail alike.
/// </summary>
internal static class JobOperations
{
    public static async Task<JobAnswer> EnqueueOneAsync(string queue, ReadOnlyMemory<byte> body, JobCall call, JobServices s)
    {
        if (JobRequests.CheckQueue(queue) is { } bad) return new(Problems.BadRequest(bad));
        if (RequestBody.IsBlank(body.Span))
            return new(Problems.BadRequest("The request body is empty: send a JSON object such as {\"kind\": \"email.send\", \"payload\": {}}."));
        if (!RequestBody.TryParse(body.Span, BodyJson.Default.EnqueueBody, out var request, out var error)) return new(error!);
        if (request is null) return new(Problems.BadRequest("The request body must be a JSON object, not null."));
        using var span = ServerTelemetry.StartSpan("conveyor.enqueue", call.TraceParent, call.TraceState);
        span?.SetTag("conveyor.queue", queue);
        if (!JobRequests.TryBuild(queue, request, s.Time.GetUtcNow(), ServerTelemetry.TraceParentFor(call.TraceParent), out var job, out var invalid, s.Options.DeliverySecrets))
            return new(Problems.BadRequest(invalid!));
        if (job.DestinationsJson is not null && await s.Push.EnsurePushAsync(queue, call.Aborted) is { } notPush) return new(Problems.Conflict(notPush));
        // Durability checkpoint: the store answers only once the insert is committed and fsynced.
        var inserted = (await s.Store.JobInsertManyAsync([job], call.Aborted))[0];
        var location = $"/v1/jobs/{inserted.Id}";
        if (!inserted.Replayed) return JsonWriterResult.Job(job.AsInserted(inserted), 201, location);
        var existing = await s.Store.JobGetAsync(inserted.Id, CancellationToken.None);
        if (existing is null) return new(Problems.NotFound($"Job {inserted.Id} was removed before it could be returned."));
        return JsonWriterResult.Job(existing, 200, location);
    }

    public static async Task<JobAnswer> EnqueueBatchAsync(string queue, ReadOnlyMemory<byte> body, bool ndjson, JobCall call, JobServices s)
    {
        if (JobRequests.CheckQueue(queue) is { } bad) return new(Problems.BadRequest(bad));
        var (requests, parseError) = ndjson ? ParseNdjson(body) : ParseArray(body.Span);
        if (parseError is not null) return new(parseError);
        if (requests!.Count > JobLimits.MaxBatchJobs)
            return new(Problems.TooLarge($"A batch may hold at most {JobLimits.MaxBatchJobs:N0} jobs, not {requests.Count:N0}: split it."));
        var now = s.Time.GetUtcNow();
        using var span = ServerTelemetry.StartSpan("conveyor.enqueue_batch", call.TraceParent, call.TraceState);
        span?.SetTag("conveyor.queue", queue);
        span?.SetTag("conveyor.jobs", requests.Count);
        var traceParent = ServerTelemetry.TraceParentFor(call.TraceParent);
        var jobs = new List<NewJob>(requests.Count);
        for (var i = 0; i < requests.Count; i++)
        {
            var (request, size) = requests[i];
            if (size > s.Options.MaxJobBytes)
                return new(Problems.TooLarge($"Job {i} of the batch is {size:N0} bytes, over the limit of {s.Options.MaxJobBytes:N0} bytes per job."));
            if (request is null) return new(Problems.BadRequest($"Job {i} of the batch is null: each must be a JSON object."));
            if (!JobRequests.TryBuild(queue, request, now, traceParent, out var job, out var invalid, s.Options.DeliverySecrets))
                return new(Problems.BadRequest($"Job {i} of the batch is invalid: {invalid} Nothing was enqueued."));
            jobs.Add(job);
        }
        if (jobs.Exists(j => j.DestinationsJson is not null) && await s.Push.EnsurePushAsync(queue, call.Aborted) is { } notPush)
            return new(Problems.Conflict(notPush));
        var inserted = await s.Store.JobInsertManyAsync(jobs, call.Aborted);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("count", inserted.Count);
            w.WriteStartArray("jobs");
            foreach (var job in inserted)
            {
                w.WriteStartObject();
                w.WriteNumber("id", job.Id);
                w.WriteBoolean("replayed", job.Replayed);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    /// <summary>A long poll: ends early when <paramref name="stopping"/> fires (the caller went away, or the server is stopping).</summary>
    public static async Task<JobAnswer> LeaseAsync(string queue, ReadOnlyMemory<byte> body, JobCall call, CancellationToken stopping, JobServices s)
    {
        if (JobRequests.CheckQueue(queue) is { } bad) return new(Problems.BadRequest(bad));
        if (s.Push.IsPush(queue))
            return new(Problems.Conflict($"Queue '{queue}' is a push queue: the server delivers its jobs to their destinations, so workers cannot lease them."));
        var request = new LeaseBody();
        if (!RequestBody.IsBlank(body.Span) && !RequestBody.TryParse(body.Span, BodyJson.Default.LeaseBody, out request, out var error)) return new(error!);
        if (!JobRequests.TryLease(queue, request ?? new LeaseBody(), out var lease, out var invalid)) return new(Problems.BadRequest(invalid!));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(stopping, s.Lifetime.ApplicationStopping);
        using var span = ServerTelemetry.StartSpan("conveyor.lease", call.TraceParent, call.TraceState);
        span?.SetTag("conveyor.queue", queue);
        IReadOnlyList<Job> jobs;
        try
        {
            jobs = await s.Store.JobLeaseAvailableAsync(lease, stop.Token);
        }
        catch (OperationCanceledException) when (s.Lifetime.ApplicationStopping.IsCancellationRequested)
        {
            return new(Results.NoContent());
        }
        span?.SetTag("conveyor.jobs", jobs.Count);
        return new(jobs.Count == 0 ? Results.NoContent() : JsonWriterResult.Jobs(jobs), Leased: jobs);
    }

    public static async Task<JobAnswer> HeartbeatAsync(long id, ReadOnlyMemory<byte> body, JobCall call, JobServices s)
    {
        if (!TryParseObject(body.Span, BodyJson.Default.HeartbeatBody, out var request, out var error)) return new(error!);
        if (string.IsNullOrEmpty(request!.LeaseToken)) return new(Problems.BadRequest($"lease_token is required to heartbeat job {id}."));
        if (!JobRequests.TryExtend(request.ExtendMs, out var extend, out var invalid)) return new(Problems.BadRequest(invalid!));
        var outcome = await s.Store.JobHeartbeatAsync(id, request.LeaseToken, extend, request.Progress?.GetRawText(), call.Aborted);
        return new(await JobOrProblemAsync(outcome, s.Store));
    }

    public static async Task<JobAnswer> AckAsync(ReadOnlyMemory<byte> body, JobCall call, JobServices s)
    {
        if (!TryParseObject(body.Span, BodyJson.Default.AckBody, out var request, out var error)) return new(error!);
        var acks = new List<AckRequest>((request!.Complete?.Count ?? 0) + (request.Fail?.Count ?? 0));
        foreach (var (item, i) in (request.Complete ?? []).Select((c, i) => (c, i)))
        {
            if (item.Id is not { } id) return new(Problems.BadRequest($"complete[{i}] needs an id."));
            if (!JobRequests.TryComplete(id, item, out var ack, out var invalid)) return new(Problems.BadRequest($"complete[{i}]: {invalid}"));
            acks.Add(ack);
        }
        foreach (var (item, i) in (request.Fail ?? []).Select((f, i) => (f, i)))
        {
            if (item.Id is not { } id) return new(Problems.BadRequest($"fail[{i}] needs an id."));
            if (!JobRequests.TryFail(id, item, out var ack, out var invalid)) return new(Problems.BadRequest($"fail[{i}]: {invalid}"));
            acks.Add(ack);
        }
        foreach (var (item, i) in (request.Release ?? []).Select((r, i) => (r, i)))
        {
            if (item.Id is not { } id || string.IsNullOrEmpty(item.LeaseToken)) return new(Problems.BadRequest($"release[{i}] needs an id and a lease_token."));
            acks.Add(AckRequest.Release(id, item.LeaseToken));
        }
        if (acks.Count > JobLimits.MaxBatchJobs)
            return new(Problems.TooLarge($"One ack may carry at most {JobLimits.MaxBatchJobs:N0} items, not {acks.Count:N0}."));
        using var span = ServerTelemetry.StartSpan("conveyor.ack", call.TraceParent, call.TraceState);
        span?.SetTag("conveyor.jobs", acks.Count);
        // Finishing work is not cancelled by the caller going away: a result that arrived is kept.
        var outcomes = await s.Store.JobAckManyAsync(acks, CancellationToken.None);
        var answer = new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("results");
            foreach (var o in outcomes)
            {
                w.WriteStartObject();
                w.WriteNumber("id", o.Id);
                w.WriteNumber("status", Problems.StatusCode(o));
                if (o.State is { } state) w.WriteString("state", state.ToWire()); else w.WriteNull("state");
                if (o.Detail is { } detail) w.WriteString("detail", detail); else w.WriteNull("detail");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return new(answer, Acked: outcomes);
    }

    public static async Task<IResult> JobOrProblemAsync(JobOutcome outcome, IJobStore store)
    {
        if (!outcome.IsOk) return Problems.From(outcome);
        return await store.JobGetAsync(outcome.Id, CancellationToken.None) is { } job
            ? JsonWriterResult.Job(job)
            : Problems.NotFound($"Job {outcome.Id} was not found.");
    }

    /// <summary>A small JSON object body; an empty one is refused since these operations need a lease token.</summary>
    public static bool TryParseObject<T>(ReadOnlySpan<byte> body, JsonTypeInfo<T> type, out T? value, out IResult? error) where T : class
    {
        value = null;
        if (RequestBody.IsBlank(body))
        {
            error = Problems.BadRequest("The request body is empty: send a JSON object with the lease_token you got from the lease.");
            return false;
        }
        if (!RequestBody.TryParse(body, type, out value, out error)) return false;
        if (value is not null) return true;
        error = Problems.BadRequest("The request body must be a JSON object, not null.");
        return false;
    }

    private static (List<(EnqueueBody?, long)>?, IResult?) ParseArray(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        var items = new List<(EnqueueBody?, long)>();
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
                return (null, Problems.BadRequest("The batch body must be a JSON array of jobs, or NDJSON with Content-Type: application/x-ndjson."));
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                var start = reader.TokenStartIndex;
                var item = JsonSerializer.Deserialize(ref reader, BodyJson.Default.EnqueueBody);
                items.Add((item, reader.BytesConsumed - start));
            }
            if (reader.TokenType != JsonTokenType.EndArray || reader.Read())
                return (null, Problems.BadRequest("The batch body must hold exactly one JSON array."));
        }
        catch (JsonException e)
        {
            return (null, Problems.BadRequest($"Job {items.Count} of the batch: {RequestBody.Describe(e)}"));
        }
        return (items, null);
    }

    private static (List<(EnqueueBody?, long)>?, IResult?) ParseNdjson(ReadOnlyMemory<byte> body)
    {
        var items = new List<(EnqueueBody?, long)>();
        var rest = body.Span;
        var line = 0;
        while (!rest.IsEmpty)
        {
            line++;
            var end = rest.IndexOf((byte)'\n');
            var current = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 1)..];
            if (current.Trim(" \t\r"u8).IsEmpty) continue;
            if (!RequestBody.TryParse(current, BodyJson.Default.EnqueueBody, out var item, out _))
            {
                return (null, Problems.BadRequest($"Line {line} of the NDJSON body is not a valid job: {Encoding.UTF8.GetString(current[..Math.Min(current.Length, 80)])}"));
            }
            items.Add((item, current.Length));
        }
        return (items, null);
    }
}
