using System.Text.RegularExpressions;

namespace Conveyor.Storage.Postgres;

/// <summary>Settings of the shared PostgreSQL store; validated when the store opens.</summary>
public sealed partial class PostgresStoreOptions
{
    public const string DefaultSchema = "conveyor";

    /// <summary>An Npgsql connection string, e.g. <c>Host=db;Username=conveyor;Password=…;Database=app</c>.</summary>
    public required string ConnectionString { get; init; }

    /// <summary>The Postgres schema holding Conveyor's tables (created when missing). Several Conveyors can share a database under different schemas.</summary>
    public string Schema { get; init; } = DefaultSchema;

    public RetryPolicy RetryPolicy { get; init; } = RetryPolicy.Default;

    /// <summary>Every timestamp the store writes comes from here (passed to SQL as a parameter, never <c>now()</c>).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Take part in the leader election and, while leader, run the reaper and the scheduler. Tests turn it off and call <see cref="PostgresJobStore.RunMaintenanceAsync"/>.</summary>
    public bool RunMaintenanceLoop { get; init; } = true;

    /// <summary>How often the leader promotes due scheduled jobs and expires lapsed leases.</summary>
    public TimeSpan MaintenanceInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How often a server that is not the leader tries to become it (the takeover time after a leader dies).</summary>
    public TimeSpan LeaderRetryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A long-polling lease looks again at least this often even when no notification arrives.</summary>
    public TimeSpan WakeupFallbackInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often an RPC result wait checks for jobs finished through other servers.</summary>
    public TimeSpan ResultPollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Most jobs folded into one insert transaction (one round trip, one fsync, one NOTIFY per queue).</summary>
    public int MaxJobsPerCommit { get; init; } = 5000;

    /// <summary>
    /// How long the notifier trusts its last look at which other servers listen on the schema's channel (it sends no
    /// NOTIFY while it sees none). A server that starts listening is noticed at once through its greeting; this bounds how
    /// long notifications go on after the last other server has gone.
    /// </summary>
    public TimeSpan PeerCheckInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Insert transactions in flight at once.</summary>
    public int InsertWriters { get; init; } = 4;

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString))
            throw new ArgumentException("The Postgres store needs a connection string, e.g. \"Host=127.0.0.1;Username=postgres;Database=conveyor\".");
        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(ConnectionString);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"The Postgres connection string is not valid: {e.Message}", e);
        }
        if (!SchemaName().IsMatch(Schema ?? ""))
            throw new ArgumentException($"The Postgres schema name must be lower-case letters, digits and _, starting with a letter or _, at most 48 characters; got '{Schema}'.");
        if (MaintenanceInterval <= TimeSpan.Zero) throw new ArgumentException("MaintenanceInterval must be positive.");
        if (LeaderRetryInterval <= TimeSpan.Zero) throw new ArgumentException("LeaderRetryInterval must be positive.");
        if (WakeupFallbackInterval <= TimeSpan.Zero) throw new ArgumentException("WakeupFallbackInterval must be positive.");
        if (ResultPollInterval <= TimeSpan.Zero) throw new ArgumentException("ResultPollInterval must be positive.");
        if (MaxJobsPerCommit < 1) throw new ArgumentException($"MaxJobsPerCommit must be at least 1, not {MaxJobsPerCommit}.");
        if (PeerCheckInterval < TimeSpan.Zero) throw new ArgumentException("PeerCheckInterval must not be negative.");
        if (InsertWriters < 1) throw new ArgumentException($"InsertWriters must be at least 1, not {InsertWriters}.");
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,47}$")]
    private static partial Regex SchemaName();
}
