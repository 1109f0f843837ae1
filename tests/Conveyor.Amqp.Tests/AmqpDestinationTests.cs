using System.Text;
using System.Text.Json.Nodes;
using Conveyor.Server;
using RabbitMQ.Client;

namespace Conveyor.Amqp.Tests;

/// <summary>The <c>amqp</c> push destination: the server publishes a job's payload to RabbitMQ with confirms.</summary>
public sealed class AmqpDestinationTests : IAsyncLifetime
{
    private readonly string _directory = System.IO.Directory.CreateTempSubdirectory("conveyor-amqp-push-").FullName;
    private RunningServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = _directory,
            Out = null,
            AmqpUri = TestBroker.Uri,
            DeliveryRetryBase = TimeSpan.FromMilliseconds(50),
        });
        _http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        try { System.IO.Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    private async Task<long> EnqueueAsync(string queue, string routingKey)
    {
        using var response = await _http.PostAsync($"/v1/queues/{queue}/jobs", new StringContent(
            """{"kind":"invoice.paid","payload":{"invoice":9},"destination":{"type":"amqp","routing_key":""" + $"\"{routingKey}\"" +
            ""","headers":{"x-source":"billing"}}}""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(201, (int)response.StatusCode);
        return (long)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!;
    }

    private async Task<JsonNode> JobAsync(long id) => JsonNode.Parse(await _http.GetStringAsync($"/v1/jobs/{id}"))!;

    private static async Task<BasicGetResult> NextMessageAsync(IConnection connection, string queue)
    {
        await using var channel = await connection.CreateChannelAsync();
        BasicGetResult? message = null;
        await TestBroker.Eventually(async () => (message = await channel.BasicGetAsync(queue, autoAck: true)) is not null, $"a message on '{queue}'");
        return message!;
    }

    [Fact]
    public async Task A_job_is_published_with_its_idempotency_key_and_completed_once_confirmed()
    {
        var rabbit = TestBroker.UniqueName("push");
        await using var connection = await TestBroker.ConnectAsync();
        await TestBroker.DeclareQueueAsync(connection, rabbit);
        var id = await EnqueueAsync(TestBroker.UniqueName("pushjobs"), rabbit);

        var message = await NextMessageAsync(connection, rabbit);
        Assert.Equal("""{"invoice":9}""", Encoding.UTF8.GetString(message.Body.Span));
        Assert.Equal($"conveyor-job-{id}", message.BasicProperties.MessageId);
        Assert.Equal($"conveyor-job-{id}", Encoding.UTF8.GetString((byte[])message.BasicProperties.Headers!["x-idempotent-key"]!));
        Assert.Equal("billing", Encoding.UTF8.GetString((byte[])message.BasicProperties.Headers!["x-source"]!));
        Assert.Equal(DeliveryModes.Persistent, message.BasicProperties.DeliveryMode);

        await TestBroker.Eventually(async () => (string)(await JobAsync(id))["state"]! == "completed", "the job completed");
    }

    [Fact]
    public async Task An_unroutable_message_fails_the_attempt_and_is_delivered_once_the_queue_exists()
    {
        var rabbit = TestBroker.UniqueName("pushlater");
        await using var connection = await TestBroker.ConnectAsync();
        var id = await EnqueueAsync(TestBroker.UniqueName("pushlaterjobs"), rabbit);

        // Nothing is bound to the routing key yet: the broker returns the message, which is a failed attempt.
        await TestBroker.Eventually(async () => (await JobAsync(id))["errors"]!.AsArray().Count > 0, "a failed attempt");
        Assert.Contains("could not route", (string)(await JobAsync(id))["errors"]![0]!["message"]!);

        await TestBroker.DeclareQueueAsync(connection, rabbit);
        var message = await NextMessageAsync(connection, rabbit);
        Assert.Equal($"conveyor-job-{id}", message.BasicProperties.MessageId);
        await TestBroker.Eventually(async () => (string)(await JobAsync(id))["state"]! == "completed", "the job completed");
    }
}
