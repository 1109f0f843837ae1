namespace Conveyor.Server.Http;

/// <summary>Turns request bodies into validated store requests, or a sentence saying what is wrong.</summary>
internal static class JobRequests
{
    private static readonly TimeSpan MaxDelay = TimeSpan.FromDays(366);

    public static string? CheckQueue(string queue) => JobLimits.IsValidQueueName(queue)
        ? null
        : $"'{Truncate(queue)}' is not a valid queue name: use 1-{JobLimits.MaxNameLength} letters, digits, '.', '_', '-' or ':'.";

    // allowedSecrets: the environment variables destination headers may name; null refuses destinations (schedule templates).
    public static bool TryBuild(
        string queue, EnqueueBody body, DateTimeOffset now, string? traceParent, out NewJob job, out string? error,
        IReadOnlyCollection<string>? allowedSecrets = null)
    {
        job = null!;
        error = Check(body, now);
        if (error is not null) return false;
        string? destinations = null;
        if ((body.Destination is not null || body.Destinations is not null) && allowedSecrets is null)
        {
            error = "Destinations are not accepted here.";
            return false;
        }
        if (allowedSecrets is not null && !Delivery.Destinations.TryNormalize(body.Destination, body.Destinations, allowedSecrets, out destinations, out error))
            return false;
        job = new NewJob
        {
            Queue = queue,
            Kind = body.Kind ?? "default",
            PayloadJson = body.Payload is { } payload ? payload.GetRawText() : null,
            Priority = body.Priority ?? 0,
            RunAt = body.RunAt ?? (body.DelayMs is { } delay ? now.AddMilliseconds(delay) : null),
            MaxAttempts = body.MaxAttempts ?? JobLimits.DefaultMaxAttempts,
            IdempotencyKey = body.IdempotencyKey,
            PartitionKey = body.PartitionKey,
            Tags = body.Tags ?? [],
            TraceParent = body.TraceParent ?? traceParent,
            DestinationsJson = destinations,
        };
        return true;
    }

    private static string? Check(EnqueueBody b, DateTimeOffset now)
    {
        if (b.Kind is { } kind && (kind.Length == 0 || kind.Length > JobLimits.MaxNameLength))
            return $"kind must be 1-{JobLimits.MaxNameLength} characters long.";
        if (b.Priority is { } p && (p < JobLimits.MinPriority || p > JobLimits.MaxPriority))
            return $"priority must be between {JobLimits.MinPriority} and {JobLimits.MaxPriority}, not {p}.";
        if (b.RunAt is not null && b.DelayMs is not null)
            return "Give either run_at or delay_ms, not both.";
        if (b.DelayMs is { } delay && (delay < 0 || delay > MaxDelay.TotalMilliseconds))
            return $"delay_ms must be between 0 and {(long)MaxDelay.TotalMilliseconds}, not {delay}.";
        if (b.RunAt is { } runAt && runAt > now + MaxDelay)
            return "run_at must be within a year from now.";
        if (b.MaxAttempts is { } attempts && (attempts < 1 || attempts > JobLimits.MaxMaxAttempts))
            return $"max_attempts must be between 1 and {JobLimits.MaxMaxAttempts}, not {attempts}.";
        if (b.IdempotencyKey is { } key && (key.Length == 0 || key.Length > JobLimits.MaxKeyLength))
            return $"idempotency_key must be 1-{JobLimits.MaxKeyLength} characters long.";
        if (b.PartitionKey is { } partition && (partition.Length == 0 || partition.Length > JobLimits.MaxKeyLength))
            return $"partition_key must be 1-{JobLimits.MaxKeyLength} characters long.";
        if (b.Tags is { } tags)
        {
            if (tags.Count > JobLimits.MaxTags) return $"A job may carry at most {JobLimits.MaxTags} tags, not {tags.Count}.";
            foreach (var tag in tags)
            {
                if (string.IsNullOrEmpty(tag) || tag.Length > JobLimits.MaxNameLength)
                    return $"Each tag must be 1-{JobLimits.MaxNameLength} characters long.";
            }
        }
        if (b.TraceParent is { Length: > 256 }) return "trace_parent must be at most 256 characters (a W3C traceparent is 55).";
        return null;
    }

    public static bool TryLease(string queue, LeaseBody body, out LeaseRequest request, out string? error)
    {
        request = null!;
        var max = body.Max ?? 1;
        var leaseMs = body.LeaseMs ?? (long)JobLimits.DefaultLease.TotalMilliseconds;
        var waitMs = body.WaitMs ?? 0;
        error = max < 1 || max > JobLimits.MaxLeaseCount ? $"max must be between 1 and {JobLimits.MaxLeaseCount}, not {max}."
            : leaseMs < JobLimits.MinLease.TotalMilliseconds || leaseMs > JobLimits.MaxLease.TotalMilliseconds
                ? $"lease_ms must be between {(long)JobLimits.MinLease.TotalMilliseconds} and {(long)JobLimits.MaxLease.TotalMilliseconds}, not {leaseMs}."
            : waitMs < 0 || waitMs > JobLimits.MaxWait.TotalMilliseconds
                ? $"wait_ms must be between 0 and {(long)JobLimits.MaxWait.TotalMilliseconds}, not {waitMs}."
            : body.Worker is { Length: > JobLimits.MaxNameLength } ? $"worker must be at most {JobLimits.MaxNameLength} characters."
            : null;
        if (error is not null) return false;
        request = new LeaseRequest(queue, max, TimeSpan.FromMilliseconds(leaseMs), TimeSpan.FromMilliseconds(waitMs), body.Worker);
        return true;
    }

    public static bool TryExtend(long? extendMs, out TimeSpan extend, out string? error)
    {
        var ms = extendMs ?? (long)JobLimits.DefaultLease.TotalMilliseconds;
        extend = TimeSpan.FromMilliseconds(ms);
        error = ms < JobLimits.MinLease.TotalMilliseconds || ms > JobLimits.MaxLease.TotalMilliseconds
            ? $"extend_ms must be between {(long)JobLimits.MinLease.TotalMilliseconds} and {(long)JobLimits.MaxLease.TotalMilliseconds}, not {ms}."
            : null;
        return error is null;
    }

    public static bool TryComplete(long id, CompleteBody body, out AckRequest ack, out string? error)
    {
        ack = null!;
        error = string.IsNullOrEmpty(body.LeaseToken) ? $"lease_token is required to complete job {id}: it came with the lease." : null;
        if (error is not null) return false;
        ack = AckRequest.Complete(id, body.LeaseToken, body.Result?.GetRawText());
        return true;
    }

    public static bool TryFail(long id, FailBody body, out AckRequest ack, out string? error)
    {
        ack = null!;
        error = string.IsNullOrEmpty(body.LeaseToken) ? $"lease_token is required to fail job {id}: it came with the lease."
            : string.IsNullOrEmpty(body.Error) ? $"error is required to fail job {id}: say what went wrong."
            : body.RetryInMs is < 0 or > 31_622_400_000 ? $"retry_in_ms must be between 0 and 31622400000 (a year), not {body.RetryInMs}."
            : null;
        if (error is not null) return false;
        ack = AckRequest.Fail(id, body.LeaseToken, body.Error!, body.Stack,
            body.RetryInMs is { } retry ? TimeSpan.FromMilliseconds(retry) : null, body.Dead ?? false);
        return true;
    }

    public static string Truncate(string text) => text.Length <= 64 ? text : text[..64] + "…";
}
