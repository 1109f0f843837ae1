namespace Conveyor.Amqp;

/// <summary>Message headers Conveyor reads and writes (docs/amqp.md has the full mapping).</summary>
public static class AmqpHeaders
{
    public const string Kind = "x-conveyor-kind";
    public const string Priority = "x-conveyor-priority";
    public const string IdempotencyKey = "x-conveyor-idempotency-key";
    public const string PartitionKey = "x-conveyor-partition-key";
    public const string MaxAttempts = "x-conveyor-max-attempts";
    public const string DelayMs = "x-conveyor-delay-ms";
    /// <summary>The delayed-message plugin's header, also honoured as a delay in milliseconds.</summary>
    public const string Delay = "x-delay";
    public const string RunAt = "x-conveyor-run-at";
    /// <summary>Comma-separated tags (or an array of strings).</summary>
    public const string Tags = "x-conveyor-tags";
    /// <summary>W3C trace context, as OpenTelemetry's messaging instrumentation writes it.</summary>
    public const string TraceParent = "traceparent";

    /// <summary>On a reply: <c>ok</c> (the body is the result) or <c>error</c> (the body is <c>{"error": …}</c>).</summary>
    public const string Status = "x-conveyor-status";
    /// <summary>On a reply from the server: the job's id and final state.</summary>
    public const string JobId = "x-conveyor-job-id";
    public const string State = "x-conveyor-state";

    public const string StatusOk = "ok";
    public const string StatusError = "error";
}
