using System.Collections.Concurrent;
using Conveyor.Storage.Sqlite;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace Conveyor.Amqp.Tests;

public sealed class IngestTests
{
    [Fact]
    public async Task Messages_from_a_rabbit_queue_become_jobs_with_their_properties_mapped()
    {
        await using var connection = await TestBroker.ConnectAsync();
        var rabbit = TestBroker.UniqueName("ingest");
        var queue = TestBroker.UniqueName("jobs");
        await TestBroker.DeclareQueueAsync(connection, rabbit);
        await using var server = await IngestServer.StartAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);

        var mapped = TestBroker.Json(messageId: "order-1", type: "order.created");
        mapped.Priority = 5;
        mapped.Headers = new Dictionary<string, object?>
        {
            [AmqpHeaders.Tags] = "a,b",
            [AmqpHeaders.MaxAttempts] = 3,
            [AmqpHeaders.PartitionKey] = "customer-7",
            [AmqpHeaders.DelayMs] = 60_000,
        };
        var text = new BasicProperties { ContentType = "text/plain" };
        await TestBroker.PublishAsync(connection, rabbit, [("""{"order":1}""", mapped), ("hello", text)]);

        await TestBroker.Eventually(async () => await server.CountAsync(queue) == 2, "two jobs");
        var jobs = await server.JobsAsync(queue);
        var order = jobs[0];
        Assert.Equal("order.created", (string)order["kind"]!);
        Assert.Equal(1, (int)order["payload"]!["order"]!);
        Assert.Equal(5, (int)order["priority"]!);
        Assert.Equal("order-1", (string)order["idempotency_key"]!);
        Assert.Equal("customer-7", (string)order["partition_key"]!);
        Assert.Equal(3, (int)order["max_attempts"]!);
        Assert.Equal("scheduled", (string)order["state"]!);
        Assert.Equal(["a", "b"], order["tags"]!.AsArray().Select(t => (string)t!));
        Assert.Equal("hello", (string)jobs[1]["payload"]!);
        Assert.Equal("default", (string)jobs[1]["kind"]!);
        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, rabbit) == 0, "the queue drained");
    }

    [Fact]
    public async Task A_message_is_acknowledged_only_after_its_job_is_committed_and_comes_back_after_a_crash()
    {
        await using var connection = await TestBroker.ConnectAsync();
        var rabbit = TestBroker.UniqueName("ack");
        await TestBroker.DeclareQueueAsync(connection, rabbit);
        await TestBroker.PublishAsync(connection, rabbit, Enumerable.Range(0, 50).Select(i => ($$"""{"n":{{i}}}""", TestBroker.Json($"m{i}"))));
        var directory = Directory.CreateTempSubdirectory("conveyor-amqp-ack-").FullName;
        var options = new AmqpIngestOptions { Uri = TestBroker.Uri, Routes = [new AmqpIngestRoute(rabbit, "acked")] };

        // The store holds every insert at a gate: RabbitMQ has handed the messages over, but none may be acknowledged yet.
        var gated = new GatedStore(Path.Combine(directory, "conveyor.db"));
        var ingest = new AmqpIngest(gated, options);
        await ingest.StartAsync(CancellationToken.None);
        await ingest.Ready.WaitAsync(TimeSpan.FromSeconds(30));
        await gated.InsertStarted.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0u, await TestBroker.ReadyCountAsync(connection, rabbit)); // all delivered, none settled

        // Crash before the commit returns: every message is back in the queue, none lost.
        await ingest.AbortAsync();
        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, rabbit) == 50, "50 messages back in the queue");
        Assert.Equal(0, gated.Inserted);
        await gated.DisposeAsync();

        // A new ingest on the same file commits them all, and only then does the queue empty.
        await using var server = await IngestServer.StartAsync(TestBroker.Uri, options.Routes, directory);
        await TestBroker.Eventually(async () => await server.CountAsync("acked") == 50, "50 jobs");
        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, rabbit) == 0, "the queue drained");
        var payloads = (await server.JobsAsync("acked")).Select(j => (int)j["payload"]!["n"]!).Order();
        Assert.Equal(Enumerable.Range(0, 50), payloads);
    }

    [Fact]
    public async Task Stopping_the_server_mid_stream_loses_nothing_and_message_ids_prevent_duplicates()
    {
        await using var connection = await TestBroker.ConnectAsync();
        var rabbit = TestBroker.UniqueName("midstream");
        var queue = TestBroker.UniqueName("ms");
        const int total = 3000;
        await TestBroker.DeclareQueueAsync(connection, rabbit);
        await TestBroker.PublishAsync(connection, rabbit, Enumerable.Range(0, total).Select(i => ($$"""{"n":{{i}}}""", TestBroker.Json($"id-{i}"))));

        await using var server = await IngestServer.StartAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);
        await TestBroker.Eventually(async () => await server.CountAsync(queue) > 0, "the first jobs");
        await server.StopAsync(); // mid-stream: some committed, some in flight, most still in RabbitMQ
        await server.StartAgainAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);

        await TestBroker.Eventually(async () => await server.CountAsync(queue) >= total, $"{total} jobs", 60);
        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, rabbit) == 0, "the queue drained");
        var ids = (await server.JobsAsync(queue)).Select(j => (string)j["idempotency_key"]!).ToList();
        Assert.Equal(total, ids.Count);
        Assert.Equal(total, ids.Distinct().Count());
    }

    [Fact]
    public async Task A_message_that_cannot_be_a_job_is_dead_lettered_and_the_queue_keeps_flowing()
    {
        await using var connection = await TestBroker.ConnectAsync();
        var rabbit = TestBroker.UniqueName("bad");
        var dead = await DeclareWithDeadLettersAsync(connection, rabbit);
        await using var server = await IngestServer.StartAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, "flowing")]);

        var badPriority = TestBroker.Json();
        badPriority.Headers = new Dictionary<string, object?> { [AmqpHeaders.Priority] = 5000 };
        await TestBroker.PublishAsync(connection, rabbit, [("{not json", TestBroker.Json()), ("{}", badPriority), ("""{"ok":true}""", TestBroker.Json())]);

        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, dead) == 2, "two dead-lettered messages");
        await TestBroker.Eventually(async () => await server.CountAsync("flowing") == 1, "the good message as a job");
        Assert.Equal(0u, await TestBroker.ReadyCountAsync(connection, rabbit));
    }

    [Fact]
    public async Task A_batch_whose_last_message_is_refused_keeps_its_channel()
    {
        await using var connection = await TestBroker.ConnectAsync();
        var rabbit = TestBroker.UniqueName("last-bad");
        var dead = await DeclareWithDeadLettersAsync(connection, rabbit);
        var directory = Directory.CreateTempSubdirectory("conveyor-amqp-last-bad-").FullName;
        var warnings = new WarningLog();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(warnings));
        await using var store = SqliteJobStore.Open(new SqliteStoreOptions { Path = Path.Combine(directory, "conveyor.db") });
        await using var ingest = new AmqpIngest(store, new AmqpIngestOptions { Uri = TestBroker.Uri, Routes = [new AmqpIngestRoute(rabbit, "after-bad")] }, loggers);
        await ingest.StartAsync(CancellationToken.None);
        await ingest.Ready.WaitAsync(TimeSpan.FromSeconds(30));

        // Alone in its batch, the refused message's tag is the batch's highest. Acknowledging "everything up to it" after
        // refusing it made RabbitMQ close the channel (an ack of a tag no longer outstanding), and its committed but not
        // yet acknowledged neighbours went back to the queue to be inserted twice.
        await TestBroker.PublishAsync(connection, rabbit, [("{not json", TestBroker.Json())]);
        await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, dead) == 1, "the refused message dead-lettered");
        await TestBroker.PublishAsync(connection, rabbit, [("""{"ok":true}""", TestBroker.Json())]);
        await TestBroker.Eventually(async () => (await store.QueueListAsync(CancellationToken.None)).Any(q => q.Name == "after-bad"), "the next message as a job");

        Assert.Equal(1, (await store.QueueListAsync(CancellationToken.None)).Single(q => q.Name == "after-bad").Counts.Available);
        Assert.Equal(0u, await TestBroker.ReadyCountAsync(connection, rabbit));
        // 3004: an acknowledgement failed; 3005: the consuming channel closed.
        Assert.DoesNotContain(warnings.EventIds, id => id is 3004 or 3005);
    }

    /// <summary>Declares <paramref name="rabbit"/> with a dead-letter queue of its own (through the default exchange); returns its name.</summary>
    private static async Task<string> DeclareWithDeadLettersAsync(IConnection connection, string rabbit)
    {
        var dead = rabbit + ".dead";
        await TestBroker.DeclareQueueAsync(connection, dead);
        await TestBroker.DeclareQueueAsync(connection, rabbit, new Dictionary<string, object?>
        {
            ["x-dead-letter-exchange"] = "",
            ["x-dead-letter-routing-key"] = dead,
        });
        return dead;
    }

    /// <summary>The event ids of every warning logged, from any thread.</summary>
    private sealed class WarningLog : ILoggerProvider, ILogger
    {
        private readonly ConcurrentQueue<int> _eventIds = new();

        public IEnumerable<int> EventIds => _eventIds;

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) _eventIds.Enqueue(eventId.Id);
        }

        public void Dispose() { }
    }

    [Fact]
    public void Binary_and_text_bodies_are_wrapped_as_json()
    {
        Assert.Equal("\"plain text\"", MessageMapper.Payload(null, "plain text"u8, out _));
        Assert.Equal("[1,2]", MessageMapper.Payload(null, "[1,2]"u8, out _));
        Assert.Equal("\"[1,2]\"", MessageMapper.Payload("text/plain", "[1,2]"u8, out _));
        Assert.Equal("{\"base64\":\"/wA=\"}", MessageMapper.Payload("application/octet-stream", new byte[] { 0xff, 0x00 }, out _));
        Assert.Null(MessageMapper.Payload("application/json", "{oops"u8, out var error));
        Assert.Contains("not valid JSON", error);
        Assert.Null(MessageMapper.Payload(null, ReadOnlySpan<byte>.Empty, out _));
    }

    [Fact]
    public void Ingest_routes_parse_and_explain_mistakes()
    {
        Assert.Equal(new AmqpIngestRoute("orders", "jobs"), AmqpIngestRoute.Parse("orders=jobs"));
        Assert.Equal(new AmqpIngestRoute("same", "same"), AmqpIngestRoute.Parse("same"));
        Assert.Contains("Conveyor queue name", Assert.Throws<ArgumentException>(() => AmqpIngestRoute.Parse("orders=bad name")).Message);
        Assert.Contains("--amqp", Assert.Throws<ArgumentException>(() => new Server.ServerOptions { Ingest = [new AmqpIngestRoute("a", "b")] }.Validate()).Message);
        Assert.Contains("amqp://", Assert.Throws<ArgumentException>(() => new Server.ServerOptions { AmqpUri = new Uri("http://x/") }.Validate()).Message);
    }
}
