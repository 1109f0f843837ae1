using System.Text;

namespace Conveyor.Amqp;

/// <summary>One ingest: messages from the RabbitMQ queue <see cref="RabbitQueue"/> become jobs in the Conveyor queue <see cref="Queue"/>.</summary>
public sealed record AmqpIngestRoute(string RabbitQueue, string Queue)
{
    /// <summary>
    /// Parses <c>rabbit-queue=conveyor-queue</c> (or just <c>name</c>, the same name on both sides). Throws
    /// <see cref="ArgumentException"/> with a sentence to act on.
    /// </summary>
    public static AmqpIngestRoute Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var at = spec.IndexOf('=', StringComparison.Ordinal);
        var route = at < 0 ? new AmqpIngestRoute(spec.Trim(), spec.Trim()) : new AmqpIngestRoute(spec[..at].Trim(), spec[(at + 1)..].Trim());
        route.Validate();
        return route;
    }

    public void Validate()
    {
        if (string.IsNullOrEmpty(RabbitQueue) || Encoding.UTF8.GetByteCount(RabbitQueue) > 255 || RabbitQueue.StartsWith("amq.", StringComparison.Ordinal))
            throw new ArgumentException(
                $"--ingest needs a RabbitMQ queue name of 1-255 bytes not starting with 'amq.', as rabbit-queue=conveyor-queue, not '{RabbitQueue}={Queue}'.");
        if (!JobLimits.IsValidQueueName(Queue))
            throw new ArgumentException(
                $"--ingest {RabbitQueue}={Queue}: the Conveyor queue name must be 1-{JobLimits.MaxNameLength} letters, digits or . _ - : characters.");
    }

    public override string ToString() => $"{RabbitQueue}={Queue}";
}

/// <summary>Settings of <see cref="AmqpIngest"/>. Defaults suit one server on a local broker.</summary>
public sealed class AmqpIngestOptions
{
    public const ushort DefaultPrefetch = 1000;
    public const int DefaultBatchSize = 500;
    public static readonly TimeSpan DefaultBatchDelay = TimeSpan.FromMilliseconds(2);
    public static readonly TimeSpan DefaultReconnectInterval = TimeSpan.FromSeconds(1);

    /// <summary>The broker, as <c>amqp://user:password@host:5672/vhost</c> (or <c>amqps://</c>).</summary>
    public required Uri Uri { get; init; }

    public required IReadOnlyList<AmqpIngestRoute> Routes { get; init; }

    /// <summary>Unacknowledged messages RabbitMQ may hand each route at once: the most a crash can make it redeliver.</summary>
    public ushort Prefetch { get; init; } = DefaultPrefetch;

    /// <summary>Most messages committed in one <c>JobInsertManyAsync</c> (and then acknowledged with one multiple-ack).</summary>
    public int BatchSize { get; init; } = DefaultBatchSize;

    /// <summary>How long a batch waits for more messages after its first one, when fewer than <see cref="BatchSize"/> are at hand.</summary>
    public TimeSpan BatchDelay { get; init; } = DefaultBatchDelay;

    /// <summary>A larger body is refused (nack without requeue: dead-lettered when the queue has a dead-letter exchange).</summary>
    public long MaxPayloadBytes { get; init; } = 1024 * 1024;

    /// <summary>Pause between attempts to reach the broker, at start and after it went away.</summary>
    public TimeSpan ReconnectInterval { get; init; } = DefaultReconnectInterval;

    /// <summary>
    /// A connection still down this long after it was lost (automatic recovery stalled) is replaced by a new one.
    /// </summary>
    public TimeSpan RecoveryTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> with a sentence to act on.</summary>
    public void Validate()
    {
        ValidateUri(Uri);
        if (Routes is null || Routes.Count == 0) throw new ArgumentException("AMQP ingest needs at least one --ingest rabbit-queue=conveyor-queue.");
        foreach (var route in Routes) route.Validate();
        var duplicate = Routes.GroupBy(r => r.RabbitQueue, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"--ingest names the RabbitMQ queue '{duplicate.Key}' more than once; one queue feeds one Conveyor queue.");
        if (Prefetch == 0) throw new ArgumentException("The AMQP prefetch must be at least 1.");
        if (BatchSize is < 1 or > JobLimits.MaxBatchJobs) throw new ArgumentException($"The AMQP batch size must be 1-{JobLimits.MaxBatchJobs}.");
    }

    /// <summary>Throws unless <paramref name="uri"/> is an absolute amqp:// or amqps:// address.</summary>
    public static void ValidateUri(Uri? uri)
    {
        if (uri is null || !uri.IsAbsoluteUri || uri.Scheme is not ("amqp" or "amqps") || string.IsNullOrEmpty(uri.Host))
            throw new ArgumentException(
                $"--amqp must be a RabbitMQ address such as amqp://guest:guest@127.0.0.1:5672/, not '{uri?.OriginalString}'.");
    }
}
