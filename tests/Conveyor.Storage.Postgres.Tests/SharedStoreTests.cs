using Npgsql;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>What only the shared store does: several stores (servers) on one schema, migrations, leadership, wake-ups across them.</summary>
public sealed class SharedStoreTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly string _schema = TestPostgres.UniqueSchema("shared");
    private readonly List<PostgresJobStore> _stores = [];

    private async Task<PostgresJobStore> OpenAsync(bool maintenance = false, TimeSpan? peerCheck = null) =>
        Track(await PostgresJobStore.OpenAsync(Options(maintenance, peerCheck)));

    private PostgresStoreOptions Options(bool maintenance, TimeSpan? peerCheck = null) => new()
    {
        PeerCheckInterval = peerCheck ?? TimeSpan.FromSeconds(1),
        ConnectionString = TestPostgres.ConnectionString,
        Schema = _schema,
        RunMaintenanceLoop = maintenance,
        LeaderRetryInterval = TimeSpan.FromMilliseconds(200),
        // Long, so a prompt answer can only come from NOTIFY.
        WakeupFallbackInterval = TimeSpan.FromMinutes(1),
    };

    private PostgresJobStore Track(PostgresJobStore store)
    {
        lock (_stores) _stores.Add(store);
        return store;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _stores) await store.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task Stores_opening_a_new_schema_together_migrate_it_exactly_once()
    {
        var opened = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PostgresJobStore.OpenAsync(Options(false))));
        foreach (var store in opened) Track(store);
        var versions = await TestPostgres.ScalarAsync<long>(TestPostgres.ConnectionString, $"SELECT count(*) FROM \"{_schema}\".schema_version");
        var latest = await TestPostgres.ScalarAsync<int>(TestPostgres.ConnectionString, $"SELECT max(version) FROM \"{_schema}\".schema_version");
        Assert.Equal(Schema.LatestVersion, latest);
        Assert.Equal(Schema.LatestVersion, versions);
    }

    [Fact]
    public async Task A_long_poll_on_one_server_returns_promptly_when_another_server_enqueues()
    {
        var a = await OpenAsync();
        var b = await OpenAsync();
        await a.Listening.WaitAsync(Wait);
        var polling = a.JobLeaseAvailableAsync(new LeaseRequest("mail", 1, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(25), "w"), default).AsTask();
        var inserted = await b.JobInsertManyAsync([new NewJob { Queue = "mail" }], default);
        var leased = await polling.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(inserted[0].Id, Assert.Single(leased).Id);
    }

    [Fact]
    public async Task A_server_alone_sends_no_notifications_for_its_inserts()
    {
        var a = await OpenAsync();
        await a.Listening.WaitAsync(Wait);
        await a.JobInsertManyAsync([new NewJob { Queue = "alone" }], default);
        await TestPostgres.Eventually(() => Task.FromResult(a.NotificationCounts.Skipped >= 1), Wait, "the notifier to pass over the insert");
        Assert.Equal(0, a.NotificationCounts.Sent);
        Assert.False(a.PeersListening);
    }

    [Fact]
    public async Task A_server_that_starts_listening_is_notified_at_once_by_one_that_was_alone()
    {
        // The first server trusts its look for ten minutes: only the newcomer's greeting can make it notify again.
        var a = await OpenAsync(peerCheck: TimeSpan.FromMinutes(10));
        await a.Listening.WaitAsync(Wait);
        await a.JobInsertManyAsync([new NewJob { Queue = "before" }], default);
        await TestPostgres.Eventually(() => Task.FromResult(a.NotificationCounts.Skipped >= 1), Wait, "the first server to find itself alone");

        var b = await OpenAsync();
        await b.Listening.WaitAsync(Wait);
        await TestPostgres.Eventually(() => Task.FromResult(a.PeersListening), Wait, "the newcomer's greeting");
        var polling = b.JobLeaseAvailableAsync(new LeaseRequest("join", 1, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(25), "w"), default).AsTask();
        await TestPostgres.Eventually(() => Task.FromResult(b.LeaseWaiters("join") == 1), Wait, "the long poll to wait");
        var inserted = await a.JobInsertManyAsync([new NewJob { Queue = "join" }], default);
        // The fallback poll is a minute away: a prompt answer comes from a's NOTIFY (or from the poll's first look, which
        // may still have been running). Either way a must notify: it had found itself alone, and trusts that for ten
        // minutes, so only the greeting can have changed its mind. Its count rises once the NOTIFY has returned, which
        // can be after b has already heard it.
        var leased = await polling.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(inserted[0].Id, Assert.Single(leased).Id);
        await TestPostgres.Eventually(() => Task.FromResult(a.NotificationCounts.Sent >= 1), Wait, "a's notification for the insert");
    }

    [Fact]
    public async Task A_server_stops_notifying_once_the_others_have_gone()
    {
        var a = await OpenAsync(peerCheck: TimeSpan.FromMilliseconds(100));
        var b = await OpenAsync();
        await a.Listening.WaitAsync(Wait);
        await b.Listening.WaitAsync(Wait);
        await a.JobInsertManyAsync([new NewJob { Queue = "company" }], default);
        await TestPostgres.Eventually(() => Task.FromResult(a.NotificationCounts.Sent >= 1), Wait, "a notification while b listens");
        Assert.Equal(0, a.NotificationCounts.Skipped);

        await b.DisposeAsync();
        await TestPostgres.Eventually(async () =>
        {
            await a.JobInsertManyAsync([new NewJob { Queue = "company" }], default);
            return a.NotificationCounts.Skipped >= 1;
        }, Wait, "the notifier to find b gone");
        Assert.False(a.PeersListening);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_waiting_long_poll_gets_a_job_when_as_many_arrive_at_once(bool throughAnotherServer)
    {
        // A wake goes to as many waiting leases as the new jobs need (or, for a notification from another server, to one,
        // which passes it on when its lease comes back full): none of these polls may be left waiting for the fallback poll.
        const int Polls = 6;
        var a = await OpenAsync();
        var b = await OpenAsync();
        await a.Listening.WaitAsync(Wait);
        var polls = Enumerable.Range(0, Polls).Select(i =>
            a.JobLeaseAvailableAsync(new LeaseRequest("fanout", 1, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(25), $"w{i}"), default).AsTask())
            .ToArray();
        await Task.Delay(200); // let them reach their wait (a poll that has not looked yet simply finds a job when it does)
        var inserted = await (throughAnotherServer ? b : a).JobInsertManyAsync(
            [.. Enumerable.Range(0, Polls).Select(_ => new NewJob { Queue = "fanout" })], default);
        var leased = await Task.WhenAll(polls).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.All(leased, jobs => Assert.Single(jobs));
        Assert.Equal(inserted.Select(j => j.Id).Order(), leased.Select(jobs => jobs[0].Id).Order());
    }

    [Fact]
    public async Task A_long_poll_taking_many_jobs_wakes_the_next_one_when_more_are_left()
    {
        // Three polls of at most two jobs each, five jobs from another server in one notification: the first woken poll
        // comes back full and passes the wake on, and so on, until the jobs are gone.
        var a = await OpenAsync();
        var b = await OpenAsync();
        await a.Listening.WaitAsync(Wait);
        var polls = Enumerable.Range(0, 3).Select(i =>
            a.JobLeaseAvailableAsync(new LeaseRequest("chain", 2, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(25), $"w{i}"), default).AsTask())
            .ToArray();
        await Task.Delay(200);
        await b.JobInsertManyAsync([.. Enumerable.Range(0, 5).Select(_ => new NewJob { Queue = "chain" })], default);
        var leased = await Task.WhenAll(polls).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(5, leased.Sum(jobs => jobs.Count));
        Assert.Equal(5, leased.SelectMany(jobs => jobs).Select(j => j.Id).Distinct().Count());
    }

    [Fact]
    public async Task A_result_wait_on_one_server_returns_when_the_job_finishes_through_another()
    {
        var a = await OpenAsync();
        var b = await OpenAsync();
        var id = (await a.JobInsertManyAsync([new NewJob { Queue = "rpc" }], default))[0].Id;
        var job = Assert.Single(await b.JobLeaseAvailableAsync(new LeaseRequest("rpc", 1, TimeSpan.FromSeconds(30), TimeSpan.Zero, "w"), default));
        var waiting = a.JobWaitFinishedAsync(id, TimeSpan.FromSeconds(25), default).AsTask();
        Assert.True((await b.JobAckManyAsync([AckRequest.Complete(id, job.Lease!.Token, "\"pong\"")], default))[0].IsOk);
        var finished = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobState.Completed, finished!.State);
        Assert.Equal("\"pong\"", finished.ResultJson);
    }

    [Fact]
    public async Task Exactly_one_server_leads_and_another_takes_over_when_the_leader_closes()
    {
        var stores = new[] { await OpenAsync(maintenance: true), await OpenAsync(maintenance: true), await OpenAsync(maintenance: true) };
        await TestPostgres.Eventually(() => Task.FromResult(stores.Count(s => s.IsLeader) == 1), Wait, "one leader among three");
        var leader = stores.Single(s => s.IsLeader);
        await leader.DisposeAsync();
        var rest = stores.Where(s => s != leader).ToArray();
        await TestPostgres.Eventually(() => Task.FromResult(rest.Count(s => s.IsLeader) == 1), Wait, "a new leader after the first closed");
        Assert.Single(rest, s => s.IsLeader);
    }

    [Fact]
    public async Task The_leader_promotes_due_jobs_and_expires_leases_without_being_asked()
    {
        var store = await OpenAsync(maintenance: true);
        var delayed = (await store.JobInsertManyAsync([new NewJob { Queue = "auto", RunAt = DateTimeOffset.UtcNow.AddMilliseconds(300) }], default))[0].Id;
        await store.JobInsertManyAsync([new NewJob { Queue = "auto" }], default);
        var leased = Assert.Single(await store.JobLeaseAvailableAsync(new LeaseRequest("auto", 1, TimeSpan.FromSeconds(1), TimeSpan.Zero, "w"), default));
        await TestPostgres.Eventually(async () => (await store.JobGetAsync(delayed, default))!.State == JobState.Available, Wait, "promotion");
        await TestPostgres.Eventually(async () => (await store.JobGetAsync(leased.Id, default))!.State == JobState.Available, Wait, "lease expiry");
        Assert.Equal(1, (await store.JobGetAsync(leased.Id, default))!.Attempt);
    }

    [Fact]
    public async Task Jobs_of_one_partition_enqueued_concurrently_through_many_servers_run_one_at_a_time_in_id_order()
    {
        var stores = new[] { await OpenAsync(), await OpenAsync(), await OpenAsync() };
        await Task.WhenAll(Enumerable.Range(0, 60).Select(i =>
            stores[i % 3].JobInsertManyAsync([new NewJob { Queue = "orders", PartitionKey = "customer-7" }], default).AsTask()));
        var order = new List<long>();
        while (order.Count < 60)
        {
            // Every server asks at once; only the partition's head may come back, from exactly one of them.
            var leases = await Task.WhenAll(stores.Select(s =>
                s.JobLeaseAvailableAsync(new LeaseRequest("orders", 10, TimeSpan.FromMinutes(1), TimeSpan.Zero, "w"), default).AsTask()));
            var got = Assert.Single(leases.SelectMany(l => l));
            order.Add(got.Id);
            Assert.True((await stores[order.Count % 3].JobAckManyAsync([AckRequest.Complete(got.Id, got.Lease!.Token)], default))[0].IsOk);
        }
        Assert.Equal(order.Order(), order);
    }

    [Fact]
    public async Task An_unreachable_database_is_reported_as_store_unavailable()
    {
        var closed = new NpgsqlConnectionStringBuilder(TestPostgres.ConnectionString) { Port = 1, Timeout = 2 }.ConnectionString;
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() =>
            PostgresJobStore.OpenAsync(new PostgresStoreOptions { ConnectionString = closed, Schema = _schema }));
        Assert.Contains("retry later", error.Message, StringComparison.OrdinalIgnoreCase);
    }
}
