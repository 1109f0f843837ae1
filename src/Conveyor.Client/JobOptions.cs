using System.Diagnostics;
using System.Text.Json;

namespace Conveyor.Client;

/// <summary>
/// How to enqueue a typed job (<see cref="ConveyorClient.EnqueueAsync{T}"/>): every enqueue option of the API except the
/// payload. Every field is optional; the server fills in its defaults (kind <c>default</c>, priority 0, 25 attempts).
/// </summary>
public sealed record JobOptions
{
    /// <summary>Free text such as <c>email.send</c>; workers route on it.</summary>
    public string? Kind { get; init; }

    /// <summary>Higher runs first, −1000…1000.</summary>
    public int? Priority { get; init; }

    /// <summary>Earliest start; give this or <see cref="Delay"/>, not both.</summary>
    public DateTimeOffset? RunAt { get; init; }

    /// <summary>Run no earlier than this long from now.</summary>
    public TimeSpan? Delay { get; init; }

    /// <summary>Attempts before the job is dead, 1–1000.</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>A key seen again in the same queue returns the existing job instead of making a new one.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Jobs sharing a partition key in a queue run one at a time, in id order.</summary>
    public string? PartitionKey { get; init; }

    public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>W3C <c>traceparent</c>; when null the current <see cref="Activity"/> (if any) is carried to the worker.</summary>
    public string? TraceParent { get; init; }

    /// <summary>Push delivery: the server delivers the payload to these webhooks or exchanges itself; no worker runs the job.</summary>
    public IReadOnlyList<PushDestination>? Destinations { get; init; }

    internal EnqueueRequest ToRequest(JsonElement? payload) => new()
    {
        Kind = Kind,
        Payload = payload,
        Priority = Priority,
        RunAt = RunAt,
        DelayMs = Delay is { } delay ? (long)delay.TotalMilliseconds : null,
        MaxAttempts = MaxAttempts,
        IdempotencyKey = IdempotencyKey,
        PartitionKey = PartitionKey,
        Tags = Tags,
        TraceParent = TraceParent ?? CurrentTraceParent(),
        Destinations = Destinations,
    };

    private static string? CurrentTraceParent() =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity ? activity.Id : null;
}
