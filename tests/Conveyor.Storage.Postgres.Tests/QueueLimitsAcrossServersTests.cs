namespace Conveyor.Storage.Postgres.Tests;

/// <summary>Queue limits hold across several stores (servers) on one schema, and free slots wake long polls on any of them.</summary>
public sealed class QueueLimitsAcrossServersTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly string _schema = TestPostgres.UniqueSchema("limits");
    private readonly List<PostgresJobStore> _stores = [];

    private async Task<PostgresJobStore[]> OpenAsync(int count)
    {
        var stores = new PostgresJobStore[count];
        for (var i = 0; i < count; i++)
        {
            stores[i] = await PostgresJobStore.OpenAsync(new PostgresStoreOptions
            {
                ConnectionString = TestPostgres.ConnectionString,
                Schema = _schema,
                RunMaintenanceLoop = false,
                // Long, so a prompt answer can only come from a wake-up.
                WakeupFallbackInterval = TimeSpan.FromMinutes(1),
            });
            _stores.Add(stores[i]);
        }
        foreach (var store in stores) await store.Listening.WaitAsync(Wait);
        return stores;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _stores) await store.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }

    private static LeaseRequest Request(string queue, int max, TimeSpan? wait = null) =>
        new(queue, max, TimeSpan.FromMinutes(5), wait ?? TimeSpan.Zero, "w");

    private static async Task Enqueue(IJobStore store, string queue, int count) =>
        await store.JobInsertManyAsync([.. Enumerable.Range(0, count).Select(_ => new NewJob { Queue = queue })], default);

    private async Task<long> RunningInDatabase(string queue) =>
        await TestPostgres.ScalarAsync<long>(TestPostgres.ConnectionString,
            $"SELECT count(*) FROM \"{_schema}\".jobs WHERE queue = @queue AND state = 2", ("queue", queue));

    [Fact]
    public async Task A_concurrency_limit_holds_under_concurrent_leases_from_several_servers()
    {
        var stores = await OpenAsync(3);
        await stores[0].QueueConfigureAsync("capped", new QueueSettings { MaxRunning = 3 }, default);
        await Enqueue(stores[1], "capped", 30);
        // Several rounds: a race lost once in a while must still show.
        for (var round = 0; round < 5; round++)
        {
            var leases = Enumerable.Range(0, 24).Select(i => stores[i % 3].JobLeaseAvailableAsync(Request("capped", 2), default).AsTask());
            var leased = (await Task.WhenAll(leases)).SelectMany(jobs => jobs).ToList();
            Assert.Equal(3, leased.Count);
            Assert.Equal(3, leased.Select(j => j.Id).Distinct().Count());
            Assert.Equal(3, await RunningInDatabase("capped"));
            await stores[round % 3].JobAckManyAsync([.. leased.Select(j => AckRequest.Complete(j.Id, j.Lease!.Token))], default);
        }
    }

    [Fact]
    public async Task A_finish_on_one_server_wakes_a_long_poll_waiting_for_a_slot_on_another()
    {
        var (a, b) = await OpenAsync(2) switch { var s => (s[0], s[1]) };
        await a.QueueConfigureAsync("one-at-a-time", new QueueSettings { MaxRunning = 1 }, default);
        await Enqueue(a, "one-at-a-time", 3);
        var first = Assert.Single(await a.JobLeaseAvailableAsync(Request("one-at-a-time", 5), default));

        // Through the one-statement completion.
        var polling = b.JobLeaseAvailableAsync(Request("one-at-a-time", 5, TimeSpan.FromSeconds(50)), default).AsTask();
        await Task.Delay(200);
        Assert.False(polling.IsCompleted);
        Assert.True((await a.JobAckManyAsync([AckRequest.Complete(first.Id, first.Lease!.Token)], default))[0].IsOk);
        var second = Assert.Single(await polling.WaitAsync(Wait));

        // Through the general ack path (a failure).
        polling = a.JobLeaseAvailableAsync(Request("one-at-a-time", 5, TimeSpan.FromSeconds(50)), default).AsTask();
        await Task.Delay(200);
        Assert.False(polling.IsCompleted);
        Assert.True((await b.JobAckManyAsync([AckRequest.Fail(second.Id, second.Lease!.Token, "boom", dead: true)], default))[0].IsOk);
        Assert.Single(await polling.WaitAsync(Wait));
        Assert.Equal(1, await RunningInDatabase("one-at-a-time"));
    }

    [Fact]
    public async Task A_rate_limit_holds_under_concurrent_leases_from_several_servers()
    {
        var stores = await OpenAsync(3);
        await Enqueue(stores[0], "slow", 10);
        for (var round = 0; round < 5; round++)
        {
            // A bucket of one token, refilled every 10 s (setting it fills it): each burst below sees exactly one.
            await stores[round % 3].QueueConfigureAsync("slow", new QueueSettings { RatePerSecond = 0.1 }, default);
            var leases = Enumerable.Range(0, 15).Select(i => stores[i % 3].JobLeaseAvailableAsync(Request("slow", 3), default).AsTask());
            Assert.Single((await Task.WhenAll(leases)).SelectMany(jobs => jobs));
        }
    }

    [Fact]
    public async Task A_long_poll_held_back_by_a_rate_limit_returns_when_the_next_token_is_due()
    {
        var stores = await OpenAsync(1);
        var store = stores[0];
        await store.QueueConfigureAsync("paced", new QueueSettings { RatePerSecond = 2 }, default);
        await Enqueue(store, "paced", 4);
        Assert.Equal(2, (await store.JobLeaseAvailableAsync(Request("paced", 10), default)).Count);
        // The next token is due in half a second; nothing else (no NOTIFY, a one-minute fallback) would wake this poll.
        var leased = await store.JobLeaseAvailableAsync(Request("paced", 10, TimeSpan.FromSeconds(50)), default).AsTask().WaitAsync(Wait);
        // One token when the poll wakes on time; two when a loaded machine wakes it a second late (the bucket holds at most two).
        Assert.InRange(leased.Count, 1, 2);
    }

    [Fact]
    public async Task Removing_the_limits_on_one_server_lets_every_server_lease_freely_again()
    {
        var (a, b) = await OpenAsync(2) switch { var s => (s[0], s[1]) };
        await a.QueueConfigureAsync("loosened", new QueueSettings { MaxRunning = 1 }, default);
        await Enqueue(a, "loosened", 5);
        Assert.Single(await b.JobLeaseAvailableAsync(Request("loosened", 5), default));
        Assert.Empty(await b.JobLeaseAvailableAsync(Request("loosened", 5), default));
        await a.QueueConfigureAsync("loosened", QueueSettings.None, default);
        Assert.Equal(4, (await b.JobLeaseAvailableAsync(Request("loosened", 5), default)).Count);
        Assert.Equal(QueueSettings.None, (await b.QueueListAsync(default)).Single(q => q.Name == "loosened").Settings);
    }
}
