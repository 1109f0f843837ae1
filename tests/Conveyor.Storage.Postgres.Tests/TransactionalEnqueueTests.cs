using Conveyor.Postgres;
using Npgsql;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>Conveyor.Postgres: jobs enqueued inside the application's own transaction exist if and only if it commits.</summary>
public sealed class TransactionalEnqueueTests : IAsyncLifetime
{
    private readonly string _schema = TestPostgres.UniqueSchema("outbox");
    private PostgresJobStore _store = null!;
    private NpgsqlConnection _app = null!;

    public async Task InitializeAsync()
    {
        _store = await PostgresJobStore.OpenAsync(new PostgresStoreOptions
        {
            ConnectionString = TestPostgres.ConnectionString,
            Schema = _schema,
            RunMaintenanceLoop = false,
            WakeupFallbackInterval = TimeSpan.FromMinutes(1), // a prompt wake-up can only be the NOTIFY sent at commit
        });
        _app = new NpgsqlConnection(TestPostgres.ConnectionString);
        await _app.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE TABLE \"{_schema}\".app_orders (id bigint PRIMARY KEY, total int)", _app);
        await create.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _store.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }

    private async Task InsertOrder(NpgsqlTransaction tx, long id)
    {
        await using var insert = new NpgsqlCommand($"INSERT INTO \"{_schema}\".app_orders (id, total) VALUES (@id, 42)", _app, tx);
        insert.Parameters.AddWithValue("id", id);
        await insert.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_job_enqueued_in_a_transaction_that_commits_is_there_and_wakes_a_waiting_worker()
    {
        await _store.Listening.WaitAsync(TimeSpan.FromSeconds(20));
        var polling = _store.JobLeaseAvailableAsync(new LeaseRequest("emails", 1, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(25), "w"), default).AsTask();
        await using var tx = await _app.BeginTransactionAsync();
        await InsertOrder(tx, 1);
        var job = await ConveyorPostgres.EnqueueAsync(tx, "emails",
            new ConveyorJob { Kind = "order.confirm", PayloadJson = """{"order":1}""", Tags = ["shop"] }, _schema);
        Assert.False(job.Replayed);
        Assert.Null(await _store.JobGetAsync(job.Id, default)); // not visible before commit
        Assert.False(polling.IsCompleted);

        await tx.CommitAsync();

        var leased = Assert.Single(await polling.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(job.Id, leased.Id);
        Assert.Equal("order.confirm", leased.Kind);
        Assert.Equal("""{"order":1}""", leased.PayloadJson);
        Assert.Equal(["shop"], leased.Tags);
        var counts = (await _store.QueueListAsync(default)).Single(q => q.Name == "emails").Counts;
        Assert.Equal(1, counts.Running);
    }

    [Fact]
    public async Task A_job_enqueued_in_a_transaction_that_rolls_back_never_exists()
    {
        long id;
        await using (var tx = await _app.BeginTransactionAsync())
        {
            await InsertOrder(tx, 2);
            id = (await ConveyorPostgres.EnqueueAsync(tx, "emails", new ConveyorJob { Kind = "order.confirm" }, _schema)).Id;
            await tx.RollbackAsync();
        }
        Assert.Null(await _store.JobGetAsync(id, default));
        Assert.Empty(await _store.JobLeaseAvailableAsync(new LeaseRequest("emails", 10, TimeSpan.FromSeconds(30), TimeSpan.Zero, "w"), default));
        Assert.DoesNotContain(await _store.QueueListAsync(default), q => q.Name == "emails" && q.Counts != StateCounts.Zero);
        Assert.Equal(0L, await TestPostgres.ScalarAsync<long>(TestPostgres.ConnectionString, $"SELECT count(*) FROM \"{_schema}\".app_orders"));
    }

    [Fact]
    public async Task An_idempotency_key_replays_within_and_across_transactions_and_with_the_server()
    {
        var fromServer = (await _store.JobInsertManyAsync([new NewJob { Queue = "emails", IdempotencyKey = "order-3" }], default))[0];
        await using var tx = await _app.BeginTransactionAsync();
        var results = await ConveyorPostgres.EnqueueManyAsync(tx, "emails",
        [
            new ConveyorJob { IdempotencyKey = "order-3" },
            new ConveyorJob { IdempotencyKey = "order-4" },
            new ConveyorJob { IdempotencyKey = "order-4" },
        ], _schema);
        await tx.CommitAsync();
        Assert.Equal(new EnqueuedJob(fromServer.Id, Replayed: true), results[0]);
        Assert.False(results[1].Replayed);
        Assert.Equal(new EnqueuedJob(results[1].Id, Replayed: true), results[2]);
        var again = await _store.JobInsertManyAsync([new NewJob { Queue = "emails", IdempotencyKey = "order-4" }], default);
        Assert.Equal(new InsertedJob(results[1].Id, true, again[0].CreatedAt), again[0]);
    }

    [Fact]
    public async Task Delayed_and_partitioned_jobs_keep_their_meaning()
    {
        await using var tx = await _app.BeginTransactionAsync();
        var later = await ConveyorPostgres.EnqueueAsync(tx, "q", new ConveyorJob { RunAt = DateTimeOffset.UtcNow.AddHours(1) }, _schema);
        var first = await ConveyorPostgres.EnqueueAsync(tx, "q", new ConveyorJob { PartitionKey = "p" }, _schema);
        var second = await ConveyorPostgres.EnqueueAsync(tx, "q", new ConveyorJob { PartitionKey = "p", Priority = 100 }, _schema);
        await tx.CommitAsync();
        Assert.Equal(JobState.Scheduled, (await _store.JobGetAsync(later.Id, default))!.State);
        Assert.True(second.Id > first.Id);
        var leased = Assert.Single(await _store.JobLeaseAvailableAsync(new LeaseRequest("q", 10, TimeSpan.FromSeconds(30), TimeSpan.Zero, "w"), default));
        Assert.Equal(first.Id, leased.Id);
    }

    [Fact]
    public async Task Bad_input_is_refused_before_anything_is_written()
    {
        await using var tx = await _app.BeginTransactionAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => ConveyorPostgres.EnqueueAsync(tx, "bad queue", new ConveyorJob(), _schema));
        await Assert.ThrowsAsync<ArgumentException>(() => ConveyorPostgres.EnqueueAsync(tx, "q", new ConveyorJob { PayloadJson = "{nope" }, _schema));
        var missing = await Assert.ThrowsAsync<InvalidOperationException>(() => ConveyorPostgres.EnqueueAsync(tx, "q", new ConveyorJob(), "no_such_schema"));
        Assert.Contains("--postgres", missing.Message);
    }
}
