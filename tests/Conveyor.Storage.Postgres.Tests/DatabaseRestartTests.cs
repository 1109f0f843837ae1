using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>The database goes away under a running server and comes back; the server answers 503 meanwhile and then recovers alone.</summary>
public sealed class DatabaseRestartTests
{
    [Fact]
    public async Task A_Postgres_restart_gets_503_problems_while_down_then_the_server_recovers_and_nothing_acknowledged_is_lost()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await using var server = await ServerProcess.StartAsync(postgres.ConnectionString, "conveyor");
        using var client = new Http(server.BaseAddress);

        var acknowledged = new ConcurrentBag<long>();
        var unavailable = 0;
        var badAnswers = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var producers = Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
        {
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                var (status, body, contentType) = await client.SendAsync(HttpMethod.Post, "/v1/queues/restart/jobs",
                    new JsonObject { ["kind"] = "k", ["payload"] = new JsonObject { ["p"] = p, ["n"] = n++ } });
                if (status == HttpStatusCode.Created) acknowledged.Add(body!["id"]!.GetValue<long>());
                else if (status == HttpStatusCode.ServiceUnavailable && contentType == "application/problem+json" && body?["status"]?.GetValue<int>() == 503)
                    Interlocked.Increment(ref unavailable);
                else badAnswers.Add($"{(int)status} {contentType} {body?.ToJsonString()}");
            }
        })).ToArray();

        await TestPostgres.Eventually(() => Task.FromResult(acknowledged.Count >= 200), TimeSpan.FromSeconds(30), "200 jobs acknowledged");
        await postgres.StopImmediatelyAsync();
        await TestPostgres.Eventually(() => Task.FromResult(Volatile.Read(ref unavailable) >= 5), TimeSpan.FromSeconds(30), "503 answers while Postgres is down");
        var (leaseStatus, leaseBody, leaseType) = await client.SendAsync(HttpMethod.Post, "/v1/queues/restart/lease", new JsonObject { ["max"] = 1 });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, leaseStatus);
        Assert.Equal("application/problem+json", leaseType);
        Assert.Equal(503, leaseBody!["status"]!.GetValue<int>());
        Assert.Contains("retry later", leaseBody["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        await postgres.StartAgainAsync();
        var before = acknowledged.Count;
        await TestPostgres.Eventually(() => Task.FromResult(acknowledged.Count >= before + 200), TimeSpan.FromSeconds(60),
            "the server to accept jobs again on its own");
        await stop.CancelAsync();
        await Task.WhenAll(producers).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Empty(badAnswers);
        var ids = acknowledged.ToArray();
        Assert.Equal((long)ids.Length, await TestPostgres.ScalarAsync<long>(postgres.ConnectionString,
            "SELECT count(*) FROM conveyor.jobs WHERE id = ANY(@ids)", ("ids", ids)));
        var queue = (await client.GetOkAsync("/v1/queues")).AsArray().Single(q => q!["name"]!.GetValue<string>() == "restart")!;
        Assert.True(queue["counts"]!["available"]!.GetValue<long>() >= ids.Length);
        var leased = (await client.PostOkAsync("/v1/queues/restart/lease", new JsonObject { ["max"] = 10 })).AsArray();
        Assert.Equal(10, leased.Count);
    }
}
