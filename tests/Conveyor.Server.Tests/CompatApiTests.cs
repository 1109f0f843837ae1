using System.Text.Json.Nodes;

namespace Conveyor.Server.Tests;

/// <summary>The simple HTTP job-queue protocol. Each test class gets its own server, since the protocol has one queue.</summary>
public sealed class CompatApiTests : IAsyncLifetime
{
    private readonly ServerFixture _server = new();
    private HttpClient Http => _server.Http;

    public Task InitializeAsync() => _server.InitializeAsync();

    public Task DisposeAsync() => _server.DisposeAsync();

    private async Task<long> Enqueue(string type)
    {
        var (status, body, _) = await Http.Send(HttpMethod.Put, "/jobs/enqueue", $$"""{"Type":"{{type}}"}""");
        Assert.Equal(200, status);
        return (long)body!["ID"]!;
    }

    [Fact]
    public async Task Time_critical_jobs_dequeue_before_others_then_oldest_first()
    {
        var slow1 = await Enqueue("NOT_TIME_CRITICAL");
        var fast1 = await Enqueue("TIME_CRITICAL");
        var slow2 = await Enqueue("NOT_TIME_CRITICAL");
        var fast2 = await Enqueue("TIME_CRITICAL");
        var order = new List<long>();
        for (var i = 0; i < 4; i++)
        {
            var (status, body, _) = await Http.Post("/jobs/dequeue");
            Assert.Equal(200, status);
            Assert.Equal("IN_PROGRESS", (string)body!["Status"]!);
            order.Add((long)body["ID"]!);
        }
        Assert.Equal([fast1, fast2, slow1, slow2], order);
        var (empty, message, _) = await Http.Post("/jobs/dequeue");
        Assert.Equal(400, empty);
        Assert.False(string.IsNullOrEmpty((string?)message!["message"]));
    }

    [Fact]
    public async Task Conclude_get_cancel_and_stats_follow_the_protocol()
    {
        var id = await Enqueue("TIME_CRITICAL");
        var (_, queued, _) = await Http.Get($"/jobs/{id}");
        Assert.Equal("QUEUED", (string)queued!["Status"]!);
        Assert.Equal("TIME_CRITICAL", (string)queued["Type"]!);
        Assert.Equal(409, (await Http.Post($"/jobs/conclude/{id}")).Status);
        await Http.Post("/jobs/dequeue");
        Assert.Equal("IN_PROGRESS", (string)(await Http.Get($"/jobs/{id}")).Body!["Status"]!);
        Assert.Equal(200, (await Http.Post($"/jobs/conclude/{id}")).Status);
        Assert.Equal("CONCLUDED", (string)(await Http.Get($"/jobs/{id}")).Body!["Status"]!);
        Assert.Equal(409, (await Http.Post($"/jobs/conclude/{id}")).Status);
        Assert.Equal(404, (await Http.Post("/jobs/conclude/999999")).Status);
        Assert.Equal(404, (await Http.Get("/jobs/999999")).Status);

        var other = await Enqueue("NOT_TIME_CRITICAL");
        var (cancelStatus, cancelled, _) = await Http.Post("/jobs/cancel", $$"""{"ID":{{other}}}""");
        Assert.Equal(200, cancelStatus);
        Assert.Equal("CANCELLED", (string)cancelled!["Status"]!);
        Assert.Equal(409, (await Http.Post("/jobs/cancel", $$"""{"ID":{{other}}}""")).Status);
        Assert.Equal(404, (await Http.Post("/jobs/cancel", """{"ID":999999}""")).Status);

        await Enqueue("TIME_CRITICAL");
        var (_, stats, _) = await Http.Get("/jobs/stats");
        Assert.Equal(1, (long)stats!["Queued"]!);
        Assert.Equal(0, (long)stats["InProgress"]!);
        Assert.Equal(1, (long)stats["Concluded"]!);
        Assert.True((long)stats["UptimeMillis"]! >= 0);
    }

    [Theory]
    [InlineData("""{"Type":"URGENT"}""")]
    [InlineData("""{}""")]
    [InlineData("nonsense")]
    public async Task Bad_enqueue_answers_400_with_a_message(string json)
    {
        var (status, body, _) = await Http.Send(HttpMethod.Put, "/jobs/enqueue", json);
        Assert.Equal(400, status);
        Assert.False(string.IsNullOrEmpty((string?)body!["message"]));
        var (_, stats, _) = await Http.Get("/jobs/stats");
        Assert.Equal(0, (long)stats!["Queued"]!);
    }

    [Fact]
    public async Task Concurrent_dequeues_never_hand_out_a_job_twice()
    {
        var ids = new List<long>();
        for (var i = 0; i < 100; i++) ids.Add(await Enqueue(i % 3 == 0 ? "TIME_CRITICAL" : "NOT_TIME_CRITICAL"));
        var got = new System.Collections.Concurrent.ConcurrentBag<long>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var (status, body, _) = await Http.Post("/jobs/dequeue");
                if (status == 400) return;
                got.Add((long)body!["ID"]!);
                Assert.Equal(200, (await Http.Post($"/jobs/conclude/{(long)body["ID"]!}")).Status);
            }
        }))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ids.Order(), got.Order());
        Assert.Equal(100, (long)(await Http.Get("/jobs/stats")).Body!["Concluded"]!);
    }
}
