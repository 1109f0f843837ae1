using Conveyor.Server;
using Microsoft.Extensions.DependencyInjection;
using System.Text;
using System.Text.Json.Nodes;
using RabbitMQ.Client;

namespace Conveyor.Amqp.Tests;

/// <summary>
/// The RabbitMQ the tests use: CONVEYOR_TEST_AMQP (./test.sh starts one and sets it), or a broker on the default loopback
/// port. A missing broker fails the tests with a sentence saying how to get one; it never skips them.
/// </summary>
public static class TestBroker
{
    public const string Variable = "CONVEYOR_TEST_AMQP";
    private static int _counter;

    public static Uri Uri { get; } = new(Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } text ? text : "amqp://guest:guest@127.0.0.1:5672/");

    /// <summary>A queue name no other test (or earlier run) uses.</summary>
    public static string UniqueName(string prefix) => $"{prefix}-{Environment.ProcessId}-{Interlocked.Increment(ref _counter)}-{Guid.NewGuid().ToString("N")[..6]}";

    public static async Task<IConnection> ConnectAsync(Uri? uri = null)
    {
        var factory = new ConnectionFactory { Uri = uri ?? Uri, AutomaticRecoveryEnabled = false };
        try
        {
            return await factory.CreateConnectionAsync();
        }
        catch (Exception e) when (uri is null)
        {
            throw new InvalidOperationException(
                $"No RabbitMQ at {Uri.Host}:{Uri.Port} ({e.GetBaseException().Message}). Run the tests with ./test.sh, which installs and starts one, " +
                $"or set {Variable} to an amqp:// URI of a broker the tests may use.", e);
        }
    }

    /// <summary>Publishes with confirms (the broker has the message when this returns).</summary>
    public static async Task PublishAsync(IConnection connection, string queue, IEnumerable<(string Body, BasicProperties Properties)> messages)
    {
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        var pending = new List<Task>();
        foreach (var (body, properties) in messages)
        {
            pending.Add(channel.BasicPublishAsync("", queue, true, properties, Encoding.UTF8.GetBytes(body)).AsTask());
            if (pending.Count >= 200)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }
        await Task.WhenAll(pending);
    }

    public static async Task DeclareQueueAsync(IConnection connection, string queue, IDictionary<string, object?>? arguments = null)
    {
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: arguments);
    }

    /// <summary>Ready (not unacknowledged) messages in a queue.</summary>
    public static async Task<uint> ReadyCountAsync(IConnection connection, string queue)
    {
        await using var channel = await connection.CreateChannelAsync();
        return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
    }

    /// <summary>Polls <paramref name="condition"/> (state outside this process: the broker, the store) until it holds or the time is up.</summary>
    public static async Task Eventually(Func<Task<bool>> condition, string what, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeoutSeconds} s waiting for: {what}");
            await Task.Delay(50);
        }
    }

    public static BasicProperties Json(string? messageId = null, string? type = null) => new()
    {
        ContentType = "application/json",
        DeliveryMode = DeliveryModes.Persistent,
        MessageId = messageId,
        Type = type,
    };
}

/// <summary>A real Conveyor server on a loopback port with a temp SQLite file, ingesting from the test broker.</summary>
public sealed class IngestServer : IAsyncDisposable
{
    private RunningServer? _server;

    private IngestServer(string directory) => Directory = directory;

    public string Directory { get; }

    public HttpClient Http { get; private set; } = null!;

    public AmqpIngest Ingest => _server!.Services.GetRequiredService<AmqpIngest>();

    public static async Task<IngestServer> StartAsync(Uri amqp, IReadOnlyList<AmqpIngestRoute> routes, string? directory = null)
    {
        var server = new IngestServer(directory ?? System.IO.Directory.CreateTempSubdirectory("conveyor-amqp-").FullName);
        await server.StartAgainAsync(amqp, routes);
        return server;
    }

    public async Task StartAgainAsync(Uri amqp, IReadOnlyList<AmqpIngestRoute> routes)
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = Directory,
            Out = null,
            AmqpUri = amqp,
            Ingest = routes,
        });
        Http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        await Ingest.Ready.WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>Stops the server gracefully (the ingest commits and acknowledges what it holds); the data directory stays.</summary>
    public async Task StopAsync()
    {
        Http.Dispose();
        if (_server is not null) await _server.DisposeAsync();
        _server = null;
    }

    public async Task<JsonNode> GetAsync(string url)
    {
        var text = await Http.GetStringAsync(url);
        return JsonNode.Parse(text)!;
    }

    /// <summary>Every job of a queue (all states), oldest first.</summary>
    public async Task<List<JsonNode>> JobsAsync(string queue)
    {
        var jobs = new List<JsonNode>();
        string? cursor = null;
        do
        {
            var page = await GetAsync($"/v1/jobs?queue={queue}&limit=500" + (cursor is null ? "" : $"&cursor={cursor}"));
            jobs.AddRange(page["jobs"]!.AsArray().Select(j => j!));
            cursor = (string?)page["next_cursor"];
        }
        while (cursor is not null);
        jobs.Reverse();
        return jobs;
    }

    public async Task<long> CountAsync(string queue)
    {
        var queues = await GetAsync("/v1/queues");
        var counts = queues.AsArray().SingleOrDefault(q => (string)q!["name"]! == queue)?["counts"];
        return counts is null ? 0 : counts.AsObject().Sum(c => (long)c.Value!);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}
