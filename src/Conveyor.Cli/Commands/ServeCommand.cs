using Conveyor.Cli.CommandLine;
using Conveyor.Server;

namespace Conveyor.Cli.Commands;

/// <summary>Environment variables standing in for <c>conveyor serve</c>'s options.</summary>
internal static class ServeVariables
{
    public const string Host = "CONVEYOR_HOST";
    public const string Port = "CONVEYOR_PORT";
    public const string Data = "CONVEYOR_DATA";
    public const string MaxJobBytes = "CONVEYOR_MAX_JOB_BYTES";
    public const string MaxBodyBytes = "CONVEYOR_MAX_BODY_BYTES";
    public const string Postgres = "CONVEYOR_POSTGRES";
    public const string PostgresSchema = "CONVEYOR_POSTGRES_SCHEMA";
    public const string Amqp = "CONVEYOR_AMQP";
    public const string ApiKeys = "CONVEYOR_API_KEYS";
    public const string AllowAnonymous = "CONVEYOR_ALLOW_ANONYMOUS";
    public const string Retention = "CONVEYOR_RETENTION";
    public const string LogFormat = "CONVEYOR_LOG_FORMAT";
    public const string DeliverySecrets = "CONVEYOR_DELIVERY_SECRETS";
    public const string DeliveryConcurrency = "CONVEYOR_DELIVERY_CONCURRENCY";
    public const string DeliveryTimeout = "CONVEYOR_DELIVERY_TIMEOUT";
    public const string ObjectStore = "CONVEYOR_OBJECT_STORE";
    public const string MaxSubmissionAge = "CONVEYOR_MAX_SUBMISSION_AGE";

    /// <summary>Ingest routes separated by commas or spaces: <c>orders=orders,mail=email</c>.</summary>
    public const string Ingest = "CONVEYOR_INGEST";
}

/// <summary>The serve options for access, clean-up and logs, as given on the command line (null: not given).</summary>
internal sealed record ServeSecurity(string? ApiKeys, bool AllowAnonymous, string? Retention, string? LogFormat);

/// <summary>The serve options for push delivery, as given on the command line (null: not given).</summary>
internal sealed record ServeDelivery(string? Secrets, int? Concurrency, string? Timeout);

/// <summary>The serve options for submissions, as given on the command line (null: not given).</summary>
internal sealed record ServeSubmissions(string? ObjectStore, string? MaxAge);

internal static class ServeCommand
{
    /// <summary>
    /// Fills what the command line left out from the environment, then the server's defaults, and validates the
    /// result with the server's own rules so both report the same sentences.
    /// </summary>
    public static ServerOptions Resolve(
        string? host, int? port, string? dataDirectory, long? maxJobBytes, long? maxBodyBytes, EnvironmentFallback fallback,
        string? postgres = null, string? postgresSchema = null, string? amqp = null, IReadOnlyList<string>? ingest = null,
        ServeSecurity? security = null, ServeDelivery? delivery = null, ServeSubmissions? submissions = null)
    {
        submissions ??= new ServeSubmissions(null, null);
        var submissionAgeText = fallback.String(submissions.MaxAge, ServeVariables.MaxSubmissionAge, "7d");
        TimeSpan? submissionAge = null;
        if (submissionAgeText != "0")
        {
            if (!DurationText.TryParse(submissionAgeText, out var parsedAge))
                throw new UsageException($"--max-submission-age (or {ServeVariables.MaxSubmissionAge}) must be a duration like 12h or 7d, or 0 to keep finished submissions forever; got '{submissionAgeText}'.");
            submissionAge = parsedAge;
        }
        security ??= new ServeSecurity(null, false, null, null);
        delivery ??= new ServeDelivery(null, null, null);
        var deliveryTimeoutText = fallback.String(delivery.Timeout, ServeVariables.DeliveryTimeout, "30s");
        if (!DurationText.TryParse(deliveryTimeoutText, out var deliveryTimeout))
            throw new UsageException($"--delivery-timeout (or {ServeVariables.DeliveryTimeout}) must be a duration like 10s or 2m; got '{deliveryTimeoutText}'.");
        IReadOnlyList<Conveyor.Server.Security.ApiKey> keys;
        try
        {
            keys = Conveyor.Server.Security.ApiKey.ParseList(fallback.String(security.ApiKeys, ServeVariables.ApiKeys, ""));
        }
        catch (ArgumentException exception)
        {
            throw new UsageException($"--api-keys (or {ServeVariables.ApiKeys}): {exception.Message}");
        }
        var retentionText = fallback.String(security.Retention, ServeVariables.Retention, "7d");
        TimeSpan? retention = null;
        if (retentionText != "0")
        {
            if (!DurationText.TryParse(retentionText, out var parsed))
                throw new UsageException($"--retention (or {ServeVariables.Retention}) must be a duration like 12h or 7d, or 0 to keep finished jobs forever; got '{retentionText}'.");
            retention = parsed;
        }
        var amqpText = fallback.String(amqp, ServeVariables.Amqp, "");
        Uri? amqpUri = null;
        if (amqpText.Length > 0 && !Uri.TryCreate(amqpText, UriKind.Absolute, out amqpUri))
            throw new UsageException($"--amqp (or {ServeVariables.Amqp}) must be a RabbitMQ address such as amqp://guest:guest@127.0.0.1:5672/, not '{amqpText}'.");
        var ingestSpecs = ingest is { Count: > 0 }
            ? ingest
            : fallback.String(null, ServeVariables.Ingest, "").Split([',', ' '], StringSplitOptions.RemoveEmptyEntries);
        List<Amqp.AmqpIngestRoute> routes;
        try
        {
            routes = ingestSpecs.Select(Amqp.AmqpIngestRoute.Parse).ToList();
        }
        catch (ArgumentException exception)
        {
            throw new UsageException(exception.Message);
        }

        var options = new ServerOptions
        {
            Host = fallback.String(host, ServeVariables.Host, ServerOptions.DefaultHost),
            Port = fallback.Int(port, ServeVariables.Port, ServerOptions.DefaultPort, 0, 65535),

            // Absolute, so the start-up line and any error name the directory unambiguously.
            DataDirectory = Path.GetFullPath(fallback.String(dataDirectory, ServeVariables.Data, ServerOptions.DefaultDataDirectory)),
            MaxJobBytes = fallback.Long(maxJobBytes, ServeVariables.MaxJobBytes, ServerOptions.DefaultMaxJobBytes, 1, long.MaxValue),
            MaxBodyBytes = fallback.Long(maxBodyBytes, ServeVariables.MaxBodyBytes, ServerOptions.DefaultMaxBodyBytes, 1, long.MaxValue),
            PostgresConnectionString = fallback.String(postgres, ServeVariables.Postgres, "") is { Length: > 0 } pg ? pg : null,
            PostgresSchema = fallback.String(postgresSchema, ServeVariables.PostgresSchema, ServerOptions.DefaultPostgresSchema),
            AmqpUri = amqpUri,
            Ingest = routes,
            ApiKeys = keys,
            AllowAnonymous = fallback.Bool(security.AllowAnonymous, ServeVariables.AllowAnonymous),
            Retention = retention,
            LogFormat = fallback.String(security.LogFormat, ServeVariables.LogFormat, "text"),
            DeliverySecrets = fallback.String(delivery.Secrets, ServeVariables.DeliverySecrets, "")
                .Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            DeliveryConcurrency = fallback.Int(delivery.Concurrency, ServeVariables.DeliveryConcurrency, 64, 1, 10_000),
            DeliveryTimeout = deliveryTimeout,
            ObjectStoreDirectory = fallback.String(submissions.ObjectStore, ServeVariables.ObjectStore, "") is { Length: > 0 } objects ? Path.GetFullPath(objects) : null,
            MaxSubmissionAge = submissionAge,
        };

        try
        {
            options.Validate();
        }
        catch (ArgumentException exception)
        {
            throw new UsageException(exception.Message);
        }

        return options;
    }

    /// <summary>Runs the server until SIGTERM/Ctrl-C, which the server handles itself; returns its exit code.</summary>
    public static Task<int> RunAsync(
        ServerOptions options, Func<ServerOptions, CancellationToken, Task<int>> runServer, CancellationToken cancellationToken) =>
        runServer(options, cancellationToken);
}
