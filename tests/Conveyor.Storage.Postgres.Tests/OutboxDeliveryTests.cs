using Conveyor.Postgres;
using Conveyor.Server;
using Conveyor.Server.Tests;
using Npgsql;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>The transactional outbox: a job with a destination written in the application's transaction is delivered iff it commits.</summary>
public sealed class OutboxDeliveryTests : IAsyncLifetime
{
    private readonly string _schema = TestPostgres.UniqueSchema("outboxpush");
    private RunningServer _server = null!;
    private WebhookReceiver _hooks = null!;
    private NpgsqlConnection _app = null!;

    public async Task InitializeAsync()
    {
        _hooks = await WebhookReceiver.StartAsync();
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            Out = null,
            PostgresConnectionString = TestPostgres.ConnectionString,
            PostgresSchema = _schema,
            DeliveryDiscoveryInterval = TimeSpan.FromMilliseconds(200),
            DeliveryRetryBase = TimeSpan.FromMilliseconds(20),
        });
        _app = new NpgsqlConnection(TestPostgres.ConnectionString);
        await _app.OpenAsync();
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _server.DisposeAsync();
        await _hooks.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }

    private async Task EnqueueAsync(string path, bool commit, string headers = "{}")
    {
        await using var tx = await _app.BeginTransactionAsync();
        await ConveyorPostgres.EnqueueAsync(tx, "outbox", new ConveyorJob
        {
            Kind = "order.created",
            PayloadJson = $$"""{"path":"{{path}}"}""",
            PartitionKey = "orders", // one line: a later job is delivered only after every earlier one
            DestinationsJson = $$"""[{"type":"http","url":"{{_hooks.Url(path)}}","headers":{{headers}}}]""",
        }, _schema);
        if (commit) await tx.CommitAsync();
        else await tx.RollbackAsync();
    }

    [Fact]
    public async Task Committed_jobs_are_delivered_and_rolled_back_ones_never()
    {
        await EnqueueAsync("/first", commit: true);
        await EnqueueAsync("/rolled-back", commit: false);
        await EnqueueAsync("/last", commit: true);

        var received = await _hooks.WaitForAsync(r => r.Any(h => h.Path == "/last"));
        Assert.Equal(["/first", "/last"], received.Select(h => h.Path));
        Assert.Equal("""{"path":"/first"}""", received[0].Body);
        Assert.StartsWith("conveyor-job-", received[0].Headers["x-idempotent-key"]);
    }

    [Fact]
    public async Task A_header_naming_a_variable_the_server_does_not_allow_is_never_resolved()
    {
        await EnqueueAsync("/secret", commit: true, headers: """{"Authorization":"{{PATH}}"}""");
        using var http = new HttpClient { BaseAddress = _server.BaseAddress };
        await TestPostgres.Eventually(async () => (await http.GetStringAsync("/v1/jobs?queue=outbox&state=dead")).Contains("does not allow", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the job dead with a sentence");
        Assert.DoesNotContain(_hooks.Received, h => h.Path == "/secret");
    }
}
