using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Conveyor.Client.Tests;

/// <summary>The producer side against a real server: typed enqueue, batch, errors as typed exceptions, RPC timeout.</summary>
public sealed class ProducerTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private ConveyorClient Client => server.Client;

    [Fact]
    public async Task A_job_with_push_destinations_goes_to_a_push_queue_and_reads_back_its_destinations()
    {
        var queue = ServerFixture.UniqueQueue("push");
        var destinations = new[]
        {
            PushDestination.Http(new Uri("http://127.0.0.1:9/hook"), "PUT", new Dictionary<string, string> { ["X-Team"] = "shop" }),
            PushDestination.Amqp("invoices"),
        };
        // Scheduled an hour ahead, so nothing tries to deliver to the addresses above during the test.
        var (job, _) = await Client.EnqueueAsync(queue, new Order("ada", 1, 1m),
            new JobOptions { Delay = TimeSpan.FromHours(1), Destinations = destinations }, TestJson.Default.Order);

        var stored = await Client.GetJobAsync(job.Id);
        Assert.Equal(2, stored.Destinations!.Count);
        Assert.Equal(("http", "http://127.0.0.1:9/hook", "PUT", "shop"), (stored.Destinations[0].Type, stored.Destinations[0].Url, stored.Destinations[0].Method, stored.Destinations[0].Headers!["X-Team"]));
        Assert.Equal(("amqp", "", "invoices"), (stored.Destinations[1].Type, stored.Destinations[1].Exchange, stored.Destinations[1].RoutingKey));
        // Workers cannot lease from a push queue: the server delivers its jobs itself.
        var refused = await Assert.ThrowsAnyAsync<ConveyorException>(() => Client.LeaseAsync(queue, 1));
        Assert.Contains("push queue", refused.Message);
    }

    [Fact]
    public async Task Typed_payload_with_a_source_generated_context_round_trips_with_every_option()
    {
        var queue = ServerFixture.UniqueQueue("typed");
        var order = new Order("ada", 3, 9.5m);

        var (job, replayed) = await Client.EnqueueAsync(
            queue,
            order,
            new JobOptions
            {
                Kind = "order.quote",
                Priority = 7,
                MaxAttempts = 4,
                IdempotencyKey = "order-1",
                PartitionKey = "ada",
                Tags = ["vip", "eu"],
                Delay = TimeSpan.FromMinutes(5),
                TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
            TestJson.Default.Order);

        Assert.False(replayed);
        var stored = await Client.GetJobAsync(job.Id);
        Assert.Equal(order, stored.Payload!.Value.Deserialize(TestJson.Default.Order));
        Assert.Equal("""{"customer":"ada","quantity":3,"price":9.5}""", stored.Payload.Value.GetRawText());
        Assert.Equal(("order.quote", 7, 4, "order-1", "ada", "scheduled"), (stored.Kind, stored.Priority, stored.MaxAttempts, stored.IdempotencyKey, stored.PartitionKey, stored.State));
        Assert.Equal(["vip", "eu"], stored.Tags);
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", stored.TraceParent);
        Assert.True(stored.RunAt > DateTimeOffset.UtcNow.AddMinutes(4));

        Assert.Null(stored.Destinations);

        var again = await Client.EnqueueAsync(queue, order, new JobOptions { IdempotencyKey = "order-1" }, TestJson.Default.Order);
        Assert.True(again.Replayed);
        Assert.Equal(job.Id, again.Job.Id);
    }

    [Fact]
    public async Task Typed_payload_without_a_context_uses_the_clients_web_defaults()
    {
        var (job, _) = await Client.EnqueueAsync(ServerFixture.UniqueQueue("web"), new Order("bob", 1, 2m));

        Assert.Equal("""{"customer":"bob","quantity":1,"price":2}""", (await Client.GetJobAsync(job.Id)).Payload!.Value.GetRawText());
    }

    [Fact]
    public async Task Many_payloads_go_through_the_batch_endpoint_in_input_order()
    {
        var queue = ServerFixture.UniqueQueue("many");

        var result = await Client.EnqueueManyAsync(
            queue, Enumerable.Range(1, 25).Select(i => new Order($"c{i}", i, i)), new JobOptions { Kind = "bulk" }, TestJson.Default.Order);

        Assert.Equal(25, result.Count);
        Assert.Equal(result.Jobs.Select(j => j.Id).Order(), result.Jobs.Select(j => j.Id));
        var last = await Client.GetJobAsync(result.Jobs[^1].Id);
        Assert.Equal(new Order("c25", 25, 25), last.Payload!.Value.Deserialize(TestJson.Default.Order));
        Assert.Equal("bulk", last.Kind);
        Assert.Equal(25, (await Client.ListQueuesAsync()).Single(q => q.Name == queue).Counts.Available);
    }

    [Fact]
    public async Task A_shared_idempotency_key_for_many_jobs_is_refused_before_sending()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            Client.EnqueueManyAsync("q", new[] { 1, 2 }, new JobOptions { IdempotencyKey = "same" }));

        Assert.Contains("every job of the batch", error.Message);
    }

    [Fact]
    public async Task Problem_answers_become_typed_exceptions_with_whether_a_retry_can_help()
    {
        var queue = ServerFixture.UniqueQueue("errors");

        var notFound = await Assert.ThrowsAsync<JobNotFoundException>(() => Client.GetJobAsync(987_654_321));
        Assert.Equal((987_654_321L, HttpStatusCode.NotFound, false), (notFound.JobId, notFound.StatusCode!.Value, notFound.IsTransient));
        Assert.Contains("987654321", notFound.Message);

        var (job, _) = await Client.EnqueueAsync(queue, 1);
        var leased = Assert.Single(await Client.LeaseAsync(queue, leaseMs: 60_000));
        var lost = await Assert.ThrowsAsync<LeaseLostException>(() => Client.CompleteAsync(job.Id, "not-the-token"));
        Assert.Equal(job.Id, lost.JobId);
        Assert.IsAssignableFrom<JobConflictException>(lost);

        await Client.CompleteAsync(job.Id, leased.Lease!.Token);
        var conflict = await Assert.ThrowsAsync<JobConflictException>(() => Client.CancelAsync(job.Id));
        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);

        var invalid = await Assert.ThrowsAsync<InvalidRequestException>(() => Client.EnqueueAsync(queue, 1, new JobOptions { Priority = 5000 }));
        Assert.Contains("priority", invalid.Message);
        Assert.False(invalid.IsTransient);

        using var nowhere = new ConveyorClient(new Uri("http://127.0.0.1:1"));
        var down = await Assert.ThrowsAsync<ServerUnavailableException>(() => nowhere.GetStatsAsync());
        Assert.True(down.IsTransient);
        Assert.Null(down.StatusCode);
    }

    [Fact]
    public async Task Release_hands_a_leased_job_back_without_counting_the_attempt()
    {
        var queue = ServerFixture.UniqueQueue("release");
        var (job, _) = await Client.EnqueueAsync(queue, "x");
        var leased = Assert.Single(await Client.LeaseAsync(queue));

        var released = await Client.ReleaseAsync(job.Id, leased.Lease!.Token);

        Assert.Equal("available", released.State);
        Assert.Equal(1, Assert.Single(await Client.LeaseAsync(queue)).Attempt);
    }

    [Fact]
    public async Task Waiting_for_a_job_nobody_works_on_times_out_with_the_job_left_as_it_is()
    {
        var queue = ServerFixture.UniqueQueue("rpc-timeout");

        var error = await Assert.ThrowsAsync<JobWaitTimeoutException>(() =>
            Client.EnqueueAndWaitAsync<Order, Quote>(queue, new Order("x", 1, 1), TimeSpan.FromMilliseconds(400)));

        Assert.True(error.IsTransient);
        Assert.Equal("available", error.LastSeen?.State);
        Assert.Contains($"job {error.JobId} did not finish within 400 ms", error.Message);
        Assert.Equal("available", (await Client.GetJobAsync(error.JobId)).State);
    }

    [Fact]
    public async Task AddConveyor_registers_a_singleton_client_that_sends_through_the_http_client_factory()
    {
        var services = new ServiceCollection();
        var sent = 0;
        services.AddConveyor(o => o.BaseAddress = server.BaseAddress)
            .AddHttpMessageHandler(() => new CountingHandler(() => Interlocked.Increment(ref sent)));
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<ConveyorClient>();
        var stats = await client.GetStatsAsync();

        Assert.Same(client, provider.GetRequiredService<ConveyorClient>());
        Assert.True(stats.UptimeMs >= 0);
        Assert.Equal(1, sent);
    }

    [Fact]
    public void AddConveyor_without_an_address_says_what_to_set()
    {
        var services = new ServiceCollection();
        services.AddConveyor(_ => { });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<ConveyorClient>());

        Assert.Contains("BaseAddress", error.Message);
    }

    [Fact]
    public async Task An_api_key_is_sent_as_a_bearer_token_and_a_missing_one_is_access_denied()
    {
        var directory = Directory.CreateTempSubdirectory("conveyor-sdk-keys-").FullName;
        const string Key = "producer-key-0123456789abcdef";
        await using var secured = await Conveyor.Server.ConveyorServer.StartAsync(new Conveyor.Server.ServerOptions
        {
            Port = 0,
            DataDirectory = directory,
            Out = null,
            ApiKeys = [Conveyor.Server.Security.ApiKey.Create(Key, Conveyor.Server.Security.ApiKeyRole.Producer)],
        });
        using var anonymous = new ConveyorClient(secured.BaseAddress);
        using var producer = new ConveyorClient(new ConveyorClientOptions { BaseAddress = secured.BaseAddress, ApiKey = Key });

        var denied = await Assert.ThrowsAsync<AccessDeniedException>(() => anonymous.EnqueueAsync("keys", 1));
        var (job, _) = await producer.EnqueueAsync("keys", 1);
        var forbidden = await Assert.ThrowsAsync<AccessDeniedException>(() => producer.LeaseAsync("keys"));

        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal("available", (await producer.GetJobAsync(job.Id)).State);
    }

    private sealed class CountingHandler(Action onSend) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            onSend();
            return base.SendAsync(request, cancellationToken);
        }
    }
}
