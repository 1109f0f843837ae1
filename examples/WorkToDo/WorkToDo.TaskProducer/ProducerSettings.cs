using System.Globalization;
using Microsoft.Extensions.Configuration;
using WorkToDo.Core;

namespace WorkToDo.TaskProducer;

/// <summary>Settings of the producer, from <c>--name value</c> options or <c>WORKTODO_NAME</c> variables (the command line wins).</summary>
public sealed class ProducerSettings
{
    public const string DefaultAmqp = "amqp://guest:guest@127.0.0.1:5672/";

    public Uri Amqp { get; init; } = new(DefaultAmqp);

    /// <summary>The RabbitMQ queue the Conveyor server ingests (<c>--ingest work-demands=work</c>).</summary>
    public string RabbitQueue { get; init; } = WorkNames.RabbitQueue;

    public TimeSpan Every { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Stop after this many demands; 0 runs until Ctrl-C / SIGTERM.</summary>
    public int Count { get; init; }

    public static ProducerSettings From(IConfiguration configuration)
    {
        var amqp = configuration["amqp"] ?? DefaultAmqp;
        if (!Uri.TryCreate(amqp, UriKind.Absolute, out var amqpUri) || amqpUri.Scheme is not ("amqp" or "amqps"))
            throw new ArgumentException($"--amqp must be a broker address such as {DefaultAmqp}, not '{amqp}'.");
        var everyText = configuration["every"] ?? "5s";
        if (!TryParseInterval(everyText, out var every))
            throw new ArgumentException($"--every must be an interval such as 5s, 500ms or 1m, not '{everyText}'.");
        var countText = configuration["count"] ?? "0";
        if (!int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            throw new ArgumentException($"--count must be a whole number of demands to send (0: until stopped), not '{countText}'.");
        var queue = configuration["rabbit-queue"] ?? WorkNames.RabbitQueue;
        if (string.IsNullOrWhiteSpace(queue) || queue.StartsWith("amq.", StringComparison.Ordinal))
            throw new ArgumentException($"--rabbit-queue must name a RabbitMQ queue (not starting with amq.), not '{queue}'.");
        return new ProducerSettings { Amqp = amqpUri, RabbitQueue = queue, Every = every, Count = count };
    }

    /// <summary><c>500ms</c> as well as everything <see cref="Durations"/> takes (<c>5s</c>, <c>1m</c>).</summary>
    public static bool TryParseInterval(string text, out TimeSpan interval)
    {
        if (text.EndsWith("ms", StringComparison.Ordinal)
            && int.TryParse(text.AsSpan(0, text.Length - 2), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms > 0)
        {
            interval = TimeSpan.FromMilliseconds(ms);
            return true;
        }
        return Durations.TryParse(text, out interval);
    }
}
