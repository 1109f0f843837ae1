using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>Real <c>conveyor serve --postgres</c> processes sharing one schema, driven over HTTP.</summary>
public sealed class MultiServerTests : IAsyncLifetime
{
    private readonly string _schema = TestPostgres.UniqueSchema("servers");
    private readonly List<ServerProcess> _servers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var server in _servers) await server.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }

    private async Task<ServerProcess[]> StartServers(int count)
    {
        // Started together on purpose: their migrations must queue behind the advisory lock, not collide.
        var started = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => ServerProcess.StartAsync(TestPostgres.ConnectionString, _schema)));
        _servers.AddRange(started);
        return started;
    }

    [Fact]
    public async Task Three_servers_share_ten_thousand_jobs_and_complete_each_exactly_once()
    {
        const int Jobs = 10_000;
        var servers = await StartServers(3);
        var clients = servers.Select(s => new Http(s.BaseAddress)).ToArray();
        try
        {
            // Producers enqueue through every server, in batches of 500.
            await Task.WhenAll(Enumerable.Range(0, Jobs / 500).Select(b =>
            {
                var batch = new JsonArray([.. Enumerable.Range(0, 500).Select(i => (JsonNode)new JsonObject
                {
                    ["kind"] = "work", ["payload"] = new JsonObject { ["n"] = b * 500 + i },
                })]);
                return clients[b % clients.Length].PostOkAsync("/v1/queues/shared/jobs/batch", batch);
            }));

            // Twelve workers, four per server, lease with a lease far longer than the test: any second lease is a violation.
            var leasedBy = new ConcurrentDictionary<long, int>();
            var completed = 0;
            var workers = Enumerable.Range(0, 12).Select(w => Task.Run(async () =>
            {
                var client = clients[w % clients.Length];
                while (Volatile.Read(ref completed) < Jobs)
                {
                    var (status, body, _) = await client.SendAsync(HttpMethod.Post, "/v1/queues/shared/lease",
                        new JsonObject { ["max"] = 50, ["lease_ms"] = 600_000, ["wait_ms"] = 500, ["worker"] = $"w{w}" });
                    if (status == HttpStatusCode.NoContent) continue;
                    Assert.Equal(HttpStatusCode.OK, status);
                    var jobs = body!.AsArray();
                    var acks = new JsonArray();
                    foreach (var job in jobs)
                    {
                        var id = job!["id"]!.GetValue<long>();
                        Assert.True(leasedBy.TryAdd(id, w), $"job {id} was leased twice while its lease was valid");
                        acks.Add(new JsonObject { ["id"] = id, ["lease_token"] = job["lease"]!["token"]!.GetValue<string>() });
                    }
                    var results = (await client.PostOkAsync("/v1/jobs/ack", new JsonObject { ["complete"] = acks }))["results"]!.AsArray();
                    Assert.All(results, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
                    Interlocked.Add(ref completed, results.Count);
                }
            })).ToArray();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(5));

            Assert.Equal(Jobs, leasedBy.Count);
            Assert.True(leasedBy.Values.Distinct().Count() > 6, "the work should spread over the workers of every server");
            foreach (var client in clients)
            {
                var queue = (await client.GetOkAsync("/v1/queues")).AsArray().Single(q => q!["name"]!.GetValue<string>() == "shared")!;
                Assert.Equal(Jobs, queue["counts"]!["completed"]!.GetValue<long>());
                Assert.Equal(0, queue["counts"]!["running"]!.GetValue<long>() + queue["counts"]!["available"]!.GetValue<long>());
            }
            Assert.Equal((long)Jobs, await TestPostgres.ScalarAsync<long>(TestPostgres.ConnectionString,
                $"SELECT count(*) FROM \"{_schema}\".jobs WHERE state = 3 AND attempt = 1 AND result IS NULL"));
            Assert.Equal(0L, await TestPostgres.ScalarAsync<long>(TestPostgres.ConnectionString, $"SELECT count(*) FROM \"{_schema}\".job_events"));
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
        }
    }

    /// <summary>The process id of the server holding this schema's leader lock, or 0.</summary>
    private async Task<int> LeaderProcessId()
    {
        var name = await TestPostgres.ScalarAsync<object>(TestPostgres.ConnectionString, """
            SELECT coalesce(max(a.application_name), '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.classid::text::bigint = (hashtext('conveyor.leader')::bigint & 4294967295)
              AND l.objid::text::bigint = (hashtext(@schema)::bigint & 4294967295)
            """, ("schema", _schema));
        return name is string text && text.StartsWith("conveyor-leader-", StringComparison.Ordinal) ? int.Parse(text["conveyor-leader-".Length..]) : 0;
    }

    [Fact]
    public async Task When_the_leader_is_killed_another_server_takes_over_reaping_and_promotion_within_seconds()
    {
        var servers = await StartServers(2);
        await TestPostgres.Eventually(async () => await LeaderProcessId() != 0, TimeSpan.FromSeconds(30), "a leader");
        var leader = servers.Single(s => s.ProcessId == LeaderProcessId().Result);
        var survivor = servers.Single(s => s != leader);
        using var client = new Http(survivor.BaseAddress);

        // A lease that will lapse, and a job due shortly: both need maintenance, which only the leader runs.
        var running = (await client.PostOkAsync("/v1/queues/failover/jobs", new JsonObject { ["kind"] = "slow" }))["id"]!.GetValue<long>();
        var leased = (await client.PostOkAsync("/v1/queues/failover/lease", new JsonObject { ["max"] = 1, ["lease_ms"] = 1000 })).AsArray();
        Assert.Equal(running, Assert.Single(leased)!["id"]!.GetValue<long>());
        await leader.KillHardAsync();
        var delayed = (await client.PostOkAsync("/v1/queues/failover/jobs", new JsonObject { ["kind"] = "later", ["delay_ms"] = 1500 }))["id"]!.GetValue<long>();

        await TestPostgres.Eventually(async () => await LeaderProcessId() == survivor.ProcessId, TimeSpan.FromSeconds(15), "the survivor to lead");
        await TestPostgres.Eventually(async () => (await client.GetOkAsync($"/v1/jobs/{delayed}"))["state"]!.GetValue<string>() == "available",
            TimeSpan.FromSeconds(15), "the delayed job to be promoted by the new leader");
        var reaped = await client.GetOkAsync($"/v1/jobs/{running}");
        await TestPostgres.Eventually(async () => (await client.GetOkAsync($"/v1/jobs/{running}"))["state"]!.GetValue<string>() == "available",
            TimeSpan.FromSeconds(15), "the lapsed lease to be reaped by the new leader");
        reaped = await client.GetOkAsync($"/v1/jobs/{running}");
        Assert.Equal(1, reaped["attempt"]!.GetValue<int>());
        var events = (await client.GetOkAsync($"/v1/jobs/{running}/events")).AsArray();
        Assert.Contains(events, e => e!["type"]!.GetValue<string>() == "lease_expired");
    }
}
