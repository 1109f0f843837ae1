namespace Conveyor.Server;

/// <summary>Settings of one server process. Defaults are what <c>conveyor serve</c> uses with no options.</summary>
public sealed class ServerOptions
{
    public const string DefaultHost = "127.0.0.1";
    public const int DefaultPort = 5080;
    public const string DefaultDataDirectory = "./conveyor-data";
    public const long DefaultMaxJobBytes = 1024 * 1024;
    public const long DefaultMaxBodyBytes = 64 * 1024 * 1024;
    public const string DefaultPostgresSchema = "conveyor";

    public string Host { get; init; } = DefaultHost;

    /// <summary>0 picks a free port; the chosen one is printed and available from <see cref="RunningServer.BaseAddress"/>.</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Directory of the embedded store; the database is <c>conveyor.db</c> inside it.</summary>
    public string DataDirectory { get; init; } = DefaultDataDirectory;

    /// <summary>
    /// An Npgsql connection string. When set, jobs live in PostgreSQL (several servers can share it) instead of the SQLite
    /// file in <see cref="DataDirectory"/>.
    /// </summary>
    public string? PostgresConnectionString { get; init; }

    /// <summary>The Postgres schema holding Conveyor's tables; created and migrated at start.</summary>
    public string PostgresSchema { get; init; } = DefaultPostgresSchema;

    /// <summary>Largest request for one job (single enqueue), and largest single job inside a batch.</summary>
    public long MaxJobBytes { get; init; } = DefaultMaxJobBytes;

    /// <summary>Largest request body of any kind (batches).</summary>
    public long MaxBodyBytes { get; init; } = DefaultMaxBodyBytes;

    /// <summary><c>text</c> (one line per entry) or <c>json</c> (one JSON object per line, for log shippers).</summary>
    public string LogFormat { get; init; } = "text";

    /// <summary>API keys with their roles. With none, every request is allowed and the server only listens on loopback.</summary>
    public IReadOnlyList<Security.ApiKey> ApiKeys { get; init; } = [];

    /// <summary>Listen beyond loopback without API keys. Off by default so nobody exposes an open queue by accident.</summary>
    public bool AllowAnonymous { get; init; }

    /// <summary>The RabbitMQ broker (<c>amqp://user:password@host:5672/vhost</c>) for <see cref="Ingest"/>; null: no RabbitMQ.</summary>
    public Uri? AmqpUri { get; init; }

    /// <summary>RabbitMQ queues consumed into Conveyor queues (docs/amqp.md). Needs <see cref="AmqpUri"/>.</summary>
    public IReadOnlyList<Amqp.AmqpIngestRoute> Ingest { get; init; } = [];

    /// <summary>How long finished jobs are kept when their queue sets no retention; null keeps them forever.</summary>
    public TimeSpan? Retention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How often the retention sweep runs.</summary>
    public TimeSpan RetentionInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// On PostgreSQL, the longest the cron scheduler sleeps between looks (other servers may change schedules); it
    /// otherwise sleeps until the next occurrence, and on SQLite up to a minute. Also its pause after a failed look.
    /// </summary>
    public TimeSpan SchedulerInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Push deliveries in flight at once across all push queues (docs/delivery.md).</summary>
    public int DeliveryConcurrency { get; init; } = 64;

    /// <summary>How long one delivery may take when its destination sets no <c>timeout_ms</c>.</summary>
    public TimeSpan DeliveryTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Backoff after the first failed delivery; doubles with each attempt (with jitter), up to an hour.</summary>
    public TimeSpan DeliveryRetryBase { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often the dispatcher looks for push queues made elsewhere (another server on the same PostgreSQL); on SQLite once a minute.</summary>
    public TimeSpan DeliveryDiscoveryInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Environment variables that destination headers may name as <c>{{NAME}}</c>; no others can be read.</summary>
    public IReadOnlyList<string> DeliverySecrets { get; init; } = [];

    /// <summary>Root of the directory object store for chunk bodies (docs/submissions.md); null: <c>objects</c> in <see cref="DataDirectory"/>.</summary>
    public string? ObjectStoreDirectory { get; init; }

    /// <summary>How long finished submissions (and their chunks) are kept; null keeps them forever.</summary>
    public TimeSpan? MaxSubmissionAge { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How often the submission retention sweep runs.</summary>
    public TimeSpan SubmissionSweepInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How often completion callbacks are looked for on PostgreSQL besides the wake-up when a submission finishes here
    /// (on SQLite, where every finish wakes it, once a minute), and the pause after a failed look on either store.
    /// </summary>
    public TimeSpan SubmissionCallbackInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether other servers write the same store (PostgreSQL): background loops then look for their changes.</summary>
    internal bool StoreIsShared => PostgresConnectionString is not null;

    /// <summary>
    /// The longest a background loop sleeps on a store only this process writes (SQLite): every change comes through
    /// this process and wakes the loop that needs it, so this only bounds a wake-up that was somehow missed.
    /// </summary>
    internal static readonly TimeSpan ExclusiveStoreRecheck = TimeSpan.FromMinutes(1);

    /// <summary>Time source for the store; tests pass a fake.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Where the startup line goes; null writes nothing.</summary>
    public TextWriter? Out { get; init; } = Console.Out;

    public string DatabasePath => Path.Combine(DataDirectory, "conveyor.db");

    /// <summary>Throws with a sentence a person can act on when a setting is out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("--host must not be empty; use 127.0.0.1 for this machine only or 0.0.0.0 for all interfaces.");
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be between 0 and 65535, not {Port}.");
        if (string.IsNullOrWhiteSpace(DataDirectory)) throw new ArgumentException("--data must name a directory for the database.");
        if (PostgresConnectionString is not null && !System.Text.RegularExpressions.Regex.IsMatch(PostgresSchema ?? "", "^[a-z_][a-z0-9_]{0,47}$"))
            throw new ArgumentException($"--postgres-schema must be lower-case letters, digits and _ (at most 48, not starting with a digit), not '{PostgresSchema}'.");
        if (MaxJobBytes < 1024) throw new ArgumentException($"--max-job-bytes must be at least 1024, not {MaxJobBytes}.");
        if (ApiKeys.Count == 0 && !AllowAnonymous && !Security.ApiKey.IsLoopback(Host))
            throw new ArgumentException(
                $"Refusing to listen on {Host} without API keys: anyone who can reach it could read and change every job. " +
                "Configure keys with --api-keys key:role (or CONVEYOR_API_KEYS), or pass --allow-anonymous if the network is trusted.");
        if (LogFormat is not ("text" or "json")) throw new ArgumentException($"--log-format must be text or json, not '{LogFormat}'.");
        if (AmqpUri is not null) Amqp.AmqpIngestOptions.ValidateUri(AmqpUri);
        if (Ingest.Count > 0 && AmqpUri is null)
            throw new ArgumentException("--ingest needs the RabbitMQ broker to consume from: add --amqp amqp://user:password@host:5672/ (or CONVEYOR_AMQP).");
        if (Ingest.Count > 0) new Amqp.AmqpIngestOptions { Uri = AmqpUri!, Routes = Ingest }.Validate();
        if (DeliveryConcurrency is < 1 or > 10_000) throw new ArgumentException($"--delivery-concurrency must be between 1 and 10000, not {DeliveryConcurrency}.");
        if (DeliveryTimeout <= TimeSpan.Zero || DeliveryTimeout > TimeSpan.FromMinutes(5))
            throw new ArgumentException($"--delivery-timeout must be above 0 and at most 5 minutes, not {DeliveryTimeout}.");
        if (DeliveryRetryBase <= TimeSpan.Zero) throw new ArgumentException($"DeliveryRetryBase must be above 0, not {DeliveryRetryBase}.");
        if (MaxSubmissionAge is { } age && age <= TimeSpan.Zero) throw new ArgumentException($"--max-submission-age must be above 0, not {age}; leave it out to keep submissions forever.");
        if (SubmissionSweepInterval <= TimeSpan.Zero) throw new ArgumentException($"--submission-sweep-interval must be above 0, not {SubmissionSweepInterval}.");
        if (MaxBodyBytes < MaxJobBytes) throw new ArgumentException($"--max-body-bytes ({MaxBodyBytes}) must be at least --max-job-bytes ({MaxJobBytes}).");
    }
}
