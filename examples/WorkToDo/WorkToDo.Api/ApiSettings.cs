using Microsoft.Extensions.Configuration;
using WorkToDo.Core;

namespace WorkToDo.Api;

/// <summary>Settings of the API, from <c>--name value</c> options or <c>WORKTODO_NAME</c> variables (the command line wins).</summary>
public sealed class ApiSettings
{
    public const string DefaultUrl = "http://127.0.0.1:5090";
    public const string DefaultConveyor = "http://127.0.0.1:5080";

    /// <summary>Where to listen; port 0 picks a free one (tests).</summary>
    public string Url { get; init; } = DefaultUrl;

    /// <summary>Npgsql connection string of the application's database.</summary>
    public required string Postgres { get; init; }

    public string Schema { get; init; } = WorkNames.DefaultSchema;

    /// <summary>The Conveyor server the compute jobs are enqueued on.</summary>
    public Uri Conveyor { get; init; } = new(DefaultConveyor);

    public string? ConveyorApiKey { get; init; }

    public string Queue { get; init; } = WorkNames.ConveyorQueue;

    /// <summary>How often the requeuer looks for works whose job may never have been enqueued.</summary>
    public TimeSpan RequeueInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How old a pending work must be before the requeuer enqueues it again (an idempotent replay if its job exists).</summary>
    public TimeSpan RequeueAfter { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Log lines go to the console when true (the program), nowhere when false (tests).</summary>
    public bool ConsoleLogs { get; init; } = true;

    /// <summary>Reads settings from configuration (keys: url, postgres, schema, conveyor, conveyor-api-key, queue); throws a sentence on bad input.</summary>
    public static ApiSettings From(IConfiguration configuration)
    {
        var postgres = configuration["postgres"];
        if (string.IsNullOrWhiteSpace(postgres))
            throw new ArgumentException("Give the database as --postgres \"Host=…;Username=…;Database=…\" (or WORKTODO_POSTGRES).");
        WorkStore.ValidateConnectionString(postgres);
        var conveyor = configuration["conveyor"] ?? Environment.GetEnvironmentVariable("CONVEYOR_SERVER") ?? DefaultConveyor;
        if (!Uri.TryCreate(conveyor, UriKind.Absolute, out var conveyorUri) || conveyorUri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--conveyor must be the Conveyor server's http:// address, not '{conveyor}'.");
        var settings = new ApiSettings
        {
            Url = configuration["url"] ?? DefaultUrl,
            Postgres = postgres,
            Schema = configuration["schema"] ?? WorkNames.DefaultSchema,
            Conveyor = conveyorUri,
            ConveyorApiKey = configuration["conveyor-api-key"] ?? Environment.GetEnvironmentVariable("CONVEYOR_API_KEY"),
            Queue = configuration["queue"] ?? WorkNames.ConveyorQueue,
        };
        settings.Validate();
        return settings;
    }

    public void Validate()
    {
        WorkStore.ValidateSchema(Schema);
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var url) || url.Scheme != "http")
            throw new ArgumentException($"--url must be an http:// address to listen on, such as {DefaultUrl}, not '{Url}'.");
        if (string.IsNullOrWhiteSpace(Queue)) throw new ArgumentException("--queue must name the Conveyor queue the consumer works on.");
    }
}
