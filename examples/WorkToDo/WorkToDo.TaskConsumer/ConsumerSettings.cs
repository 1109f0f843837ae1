using Microsoft.Extensions.Configuration;
using WorkToDo.Core;

namespace WorkToDo.TaskConsumer;

/// <summary>Settings of the consumer, from <c>--name value</c> options or <c>WORKTODO_NAME</c> variables (the command line wins).</summary>
public sealed class ConsumerSettings
{
    public const string DefaultConveyor = "http://127.0.0.1:5080";

    public required string Postgres { get; init; }

    public string Schema { get; init; } = WorkNames.DefaultSchema;

    public Uri Conveyor { get; init; } = new(DefaultConveyor);

    public string? ConveyorApiKey { get; init; }

    /// <summary>The Conveyor queue holding both kinds of job: API compute jobs and ingested demands.</summary>
    public string Queue { get; init; } = WorkNames.ConveyorQueue;

    public int Concurrency { get; init; } = 8;

    /// <summary>The worker's long poll; shutdown waits for one in flight, so tests keep it short.</summary>
    public TimeSpan PollWait { get; init; } = TimeSpan.FromSeconds(5);

    public bool ConsoleLogs { get; init; } = true;

    public static ConsumerSettings From(IConfiguration configuration)
    {
        var postgres = configuration["postgres"];
        if (string.IsNullOrWhiteSpace(postgres))
            throw new ArgumentException("Give the database as --postgres \"Host=…;Username=…;Database=…\" (or WORKTODO_POSTGRES).");
        WorkStore.ValidateConnectionString(postgres);
        var conveyor = configuration["conveyor"] ?? Environment.GetEnvironmentVariable("CONVEYOR_SERVER") ?? DefaultConveyor;
        if (!Uri.TryCreate(conveyor, UriKind.Absolute, out var conveyorUri) || conveyorUri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--conveyor must be the Conveyor server's http:// address, not '{conveyor}'.");
        var concurrencyText = configuration["concurrency"] ?? "8";
        if (!int.TryParse(concurrencyText, System.Globalization.CultureInfo.InvariantCulture, out var concurrency) || concurrency is < 1 or > 1000)
            throw new ArgumentException($"--concurrency must be a whole number from 1 to 1000, not '{concurrencyText}'.");
        var settings = new ConsumerSettings
        {
            Postgres = postgres,
            Schema = configuration["schema"] ?? WorkNames.DefaultSchema,
            Conveyor = conveyorUri,
            ConveyorApiKey = configuration["conveyor-api-key"] ?? Environment.GetEnvironmentVariable("CONVEYOR_API_KEY"),
            Queue = configuration["queue"] ?? WorkNames.ConveyorQueue,
            Concurrency = concurrency,
        };
        WorkStore.ValidateSchema(settings.Schema);
        return settings;
    }
}
