using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Conveyor.Server;
using Conveyor.Server.Tests;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>Three servers on one PostgreSQL deliver one push queue together: each key strictly in order, each job once.</summary>
public sealed class DeliveryAcrossServersTests : IAsyncLifetime
{
    private readonly string _schema = TestPostgres.UniqueSchema("push");
    private readonly List<RunningServer> _servers = [];
    private WebhookReceiver _hooks = null!;

    public async Task InitializeAsync()
    {
        _hooks = await WebhookReceiver.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            _servers.Add(await ConveyorServer.StartAsync(new ServerOptions
            {
                Port = 0,
                Out = null,
                PostgresConnectionString = TestPostgres.ConnectionString,
                PostgresSchema = _schema,
                DeliveryRetryBase = TimeSpan.FromMilliseconds(20),
                DeliveryDiscoveryInterval = TimeSpan.FromMilliseconds(200),
                DeliveryConcurrency = 8,
            }));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var server in _servers) await server.DisposeAsync();
        await _hooks.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task Each_partition_is_delivered_in_order_and_each_job_once()
    {
        // Every seventh job fails on its first try; the rest of its partition must wait for it.
        var failedOnce = new System.Collections.Concurrent.ConcurrentDictionary<string, byte>();
        _hooks.Respond = (_, body, _) => Number(body) % 7 == 3 && failedOnce.TryAdd(body, 0) ? (500, TimeSpan.Zero) : (200, TimeSpan.FromMilliseconds(1));
        const int perKey = 20;
        var keys = new[] { "a", "b", "c", "d" };
        var batch = new JsonArray();
        for (var i = 0; i < perKey; i++)
        {
            foreach (var key in keys)
            {
                batch.Add(new JsonObject
                {
                    ["payload"] = $"{key},{i}",
                    ["partition_key"] = key,
                    ["destination"] = new JsonObject { ["type"] = "http", ["url"] = _hooks.Url($"/{key}") },
                });
            }
        }
        using var http = new HttpClient { BaseAddress = _servers[0].BaseAddress };
        using var response = await http.PostAsync("/v1/queues/hooks/jobs/batch", JsonContent.Create(batch));
        Assert.Equal(200, (int)response.StatusCode);

        var all = await _hooks.WaitForAsync(r => r.Count(h => h.Status == 200) == perKey * keys.Length, TimeSpan.FromSeconds(60));
        foreach (var key in keys)
        {
            var seen = all.Where(h => h.Path == $"/{key}")
                .Select(h => (N: Number(h.Body), h.Status)).ToList();
            for (var i = 1; i < seen.Count; i++)
                Assert.True(seen[i].N == seen[i - 1].N + (seen[i - 1].Status == 200 ? 1 : 0), $"partition {key} went {seen[i - 1]} then {seen[i]}");
            Assert.Equal(Enumerable.Range(0, perKey), seen.Where(s => s.Status == 200).Select(s => s.N));
        }
    }

    /// <summary>The payload is the JSON string <c>"key,n"</c>.</summary>
    private static int Number(string body) => int.Parse(body.Trim('"').Split(',')[1], CultureInfo.InvariantCulture);
}
