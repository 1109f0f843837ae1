using Conveyor.Storage.Sqlite;

namespace Conveyor.Storage.Tests;

/// <summary>The contract suite against a real SQLite file in a fresh temp directory per test.</summary>
public sealed class SqliteJobStoreTests : JobStoreContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-store-").FullName;

    private SqliteJobStore Open() => SqliteJobStore.Open(new SqliteStoreOptions
    {
        Path = Path.Combine(_directory, "conveyor.db"),
        TimeProvider = Time,
        RunMaintenanceLoop = false,
    });

    protected override Task<IJobStore> OpenAsync() => Task.FromResult<IJobStore>(Open());

    protected override async Task<IJobStore> ReopenAsync()
    {
        await Store.DisposeAsync();
        return Open();
    }

    protected override Task MaintainAsync() => ((SqliteJobStore)Store).RunMaintenanceAsync();

    /// <summary>Leases live in memory: a restart forgets them and the job is available at once.</summary>
    protected override bool LeasesSurviveRestart => false;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task The_database_is_in_WAL_mode_with_full_sync_and_at_the_latest_schema()
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_directory, "conveyor.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
        command.CommandText = "SELECT max(version) FROM schema_version";
        Assert.Equal((long)Schema.LatestVersion, (long?)await command.ExecuteScalarAsync());
    }
}
