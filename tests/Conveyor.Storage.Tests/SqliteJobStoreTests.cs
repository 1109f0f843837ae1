using Conveyor.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Tests;

/// <summary>The contract suite against a real SQLite file in a fresh temp directory per test.</summary>
public sealed class SqliteJobStoreTests : JobStoreContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-store-").FullName;

    private readonly List<int> _migrationsTold = [];

    private SqliteJobStore Open(string file = "conveyor.db") => SqliteJobStore.Open(new SqliteStoreOptions
    {
        Path = Path.Combine(_directory, file),
        MigrationStarting = _migrationsTold.Add,
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

    private SqliteConnection Connect(string file) => new($"Data Source={Path.Combine(_directory, file)};Pooling=False");

    [Fact]
    public async Task Ids_reserved_in_blocks_are_not_reused_after_every_job_is_gone()
    {
        // 5,000 ids cross the first reserved block's end inside one transaction.
        var ids = await Store.JobInsertManyAsync([.. Enumerable.Range(0, 5000).Select(_ => new NewJob { Queue = Queue })], CancellationToken.None);
        await Store.DisposeAsync();
        using (var connection = Connect("conveyor.db"))
        {
            connection.Open();
            Schema.Exec(connection, "DELETE FROM jobs");
        }
        Store = Open();
        var next = (await Store.JobInsertManyAsync([new NewJob { Queue = Queue }], CancellationToken.None))[0].Id;
        Assert.True(next > ids[^1].Id, $"id {next} was handed out again");
    }

    [Fact]
    public async Task A_database_of_schema_3_keeps_its_jobs_and_never_reuses_the_ids_AUTOINCREMENT_had_handed_out()
    {
        using (var connection = Connect("old.db"))
        {
            connection.Open();
            Schema.Migrate(connection, targetVersion: 3);
            Schema.Exec(connection, """
                INSERT INTO queues (name, paused, created_at) VALUES ('old', 0, 0);
                INSERT INTO jobs (queue, kind, state, priority, run_at, attempt, max_attempts, payload, created_at, updated_at)
                VALUES ('old', 'k', 0, 0, 0, 0, 1, '{"n":1}', 0, 0), ('old', 'k', 0, 0, 0, 0, 1, '{"n":2}', 0, 0),
                       ('old', 'k', 0, 0, 0, 0, 1, '{"n":3}', 0, 0);
                DELETE FROM jobs WHERE id = 3;
                """);
        }
        await Store.DisposeAsync();
        _migrationsTold.Clear();
        Store = Open("old.db");
        Assert.Equal([4], _migrationsTold);

        Assert.Equal("""{"n":2}""", (await Store.JobGetAsync(2, CancellationToken.None))!.PayloadJson);
        var leased = await Store.JobLeaseAvailableAsync(new LeaseRequest("old", 10, TimeSpan.FromSeconds(30), TimeSpan.Zero, "w1"), CancellationToken.None);
        Assert.Equal([1L, 2L], leased.Select(j => j.Id));
        var next = (await Store.JobInsertManyAsync([new NewJob { Queue = "old" }], CancellationToken.None))[0].Id;
        Assert.Equal(4, next);

        using var check = Connect("old.db");
        check.Open();
        using var command = check.CreateCommand();
        command.CommandText = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'";
        Assert.DoesNotContain("AUTOINCREMENT", (string)command.ExecuteScalar()!, StringComparison.OrdinalIgnoreCase);
        command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND name LIKE 'jobs_%'";
        Assert.Equal(3L, (long)command.ExecuteScalar()!);
    }

    /// <summary>A store with its own maintenance loop running on the fake clock.</summary>
    private SqliteJobStore OpenMaintained(string file) => SqliteJobStore.Open(new SqliteStoreOptions
    {
        Path = Path.Combine(_directory, file),
        TimeProvider = Time,
    });

    /// <summary>
    /// Moves the fake clock by <paramref name="first"/>, then a tick at a time while <paramref name="done"/> has not
    /// completed within a second of real time (the loop reacts on its own thread); returns how far the clock moved.
    /// </summary>
    private async Task<TimeSpan> AdvanceUntil(Task done, TimeSpan first, TimeSpan tick)
    {
        Time.Advance(first);
        var moved = first;
        for (var i = 0; i < 40 && await Task.WhenAny(done, Task.Delay(TimeSpan.FromSeconds(1))) != done; i++)
        {
            Time.Advance(tick);
            moved += tick;
        }
        await done.WaitAsync(TimeSpan.FromSeconds(10));
        return moved;
    }

    private static readonly TimeSpan Tick = new SqliteStoreOptions { Path = "unused" }.MaintenanceInterval;

    [Fact]
    public async Task The_maintenance_loop_wakes_for_a_job_scheduled_while_it_sleeps()
    {
        await using var store = OpenMaintained("maintained.db");
        // With nothing pending the loop sleeps up to a second; this job is due well before that.
        var runAt = Time.GetUtcNow() + 6 * Tick;
        var id = (await store.JobInsertManyAsync([new NewJob { Queue = "m", RunAt = runAt }], CancellationToken.None))[0].Id;
        var lease = store.JobLeaseAvailableAsync(new LeaseRequest("m", 1, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), "w1"), CancellationToken.None).AsTask();

        var moved = await AdvanceUntil(lease, 6 * Tick, Tick);

        Assert.Equal(id, Assert.Single(await lease).Id);
        // Not "within a tick": a loop that read the clock just before the jump may sleep its wait from after it.
        Assert.True(moved < SqliteJobStore.IdleMaintenanceWait, $"promoted only after {moved.TotalMilliseconds} ms of the clock, for a job due after {(6 * Tick).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task The_maintenance_loop_wakes_for_a_lease_that_expires_before_its_next_wake_up()
    {
        await using var store = OpenMaintained("maintained.db");
        await store.JobInsertManyAsync([new NewJob { Queue = "m" }], CancellationToken.None);
        var first = Assert.Single(await store.JobLeaseAvailableAsync(new LeaseRequest("m", 1, 6 * Tick, TimeSpan.Zero, "w1"), CancellationToken.None));
        var again = store.JobLeaseAvailableAsync(new LeaseRequest("m", 1, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), "w2"), CancellationToken.None).AsTask();

        var moved = await AdvanceUntil(again, 6 * Tick, Tick);

        var second = Assert.Single(await again);
        Assert.Equal(first.Id, second.Id);
        Assert.Equal(2, second.Attempt);
        Assert.True(moved < SqliteJobStore.IdleMaintenanceWait, $"expired only after {moved.TotalMilliseconds} ms of the clock, for a lease of {(6 * Tick).TotalMilliseconds} ms");
    }

    [Fact]
    public void A_new_database_is_created_without_telling_of_migrations() => Assert.Empty(_migrationsTold);

    [Fact]
    public async Task The_database_is_in_WAL_mode_with_full_sync_and_at_the_latest_schema()
    {
        await using var connection = Connect("conveyor.db");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
        command.CommandText = "SELECT max(version) FROM schema_version";
        Assert.Equal((long)Schema.LatestVersion, (long?)await command.ExecuteScalarAsync());
    }
}
