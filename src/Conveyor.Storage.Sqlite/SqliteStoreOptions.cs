namespace Conveyor.Storage.Sqlite;

/// <summary>Settings of the embedded store; validated when the store opens.</summary>
public sealed class SqliteStoreOptions
{
    /// <summary>The database file. Its directory is created when missing.</summary>
    public required string Path { get; init; }

    public RetryPolicy RetryPolicy { get; init; } = RetryPolicy.Default;

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Most write requests folded into one transaction (one fsync).</summary>
    public int MaxOpsPerCommit { get; init; } = 512;

    /// <summary>
    /// The shortest pause between two runs of the maintenance loop (promoting due scheduled jobs, expiring leases, waking
    /// rate-limited long polls): it sleeps until the earliest of those is due, but at least this long once it has run.
    /// </summary>
    public TimeSpan MaintenanceInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Run the maintenance loop in the background. Tests turn it off and call it themselves.</summary>
    public bool RunMaintenanceLoop { get; init; } = true;

    /// <summary>Readers kept open for concurrent reads.</summary>
    public int MaxIdleReaders { get; init; } = 16;

    /// <summary>
    /// Told the schema version a migration is about to bring the database to, before it runs. The server logs it: most
    /// migrations are instant, but one that rebuilds a table takes seconds per million jobs.
    /// </summary>
    public Action<int>? MigrationStarting { get; init; }

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path)) throw new ArgumentException("The SQLite store needs a file path; set Path (the server uses <data>/conveyor.db).");
        if (MaxOpsPerCommit < 1) throw new ArgumentException($"MaxOpsPerCommit must be at least 1, not {MaxOpsPerCommit}.");
        if (MaintenanceInterval <= TimeSpan.Zero) throw new ArgumentException("MaintenanceInterval must be positive.");
    }
}
