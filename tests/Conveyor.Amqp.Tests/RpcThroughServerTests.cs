using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Conveyor.Amqp.Tests;

public sealed class RpcThroughServerTests
{
    private static async Task<JsonNode> LeaseOneAsync(IngestServer server, string queue)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var response = await server.Http.PostAsJsonAsync($"/v1/queues/{queue}/lease", new { max = 1, lease_ms = 60000, wait_ms = 5000, worker = "http-worker" });
            if ((int)response.StatusCode == 200) return JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsArray()[0]!;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no job to lease in '{queue}'");
        }
    }

    [Fact]
    public async Task An_rpc_message_gets_its_jobs_result_on_reply_to_with_the_same_correlation_id()
    {
        var rabbit = TestBroker.UniqueName("rpc");
        var queue = TestBroker.UniqueName("rpcjobs");
        await using (var connection = await TestBroker.ConnectAsync()) await TestBroker.DeclareQueueAsync(connection, rabbit);
        await using var server = await IngestServer.StartAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri, DefaultTimeout = TimeSpan.FromSeconds(30) });

        var call = client.CallAsync(rabbit, """{"a":2,"b":3}"""u8.ToArray(), new AmqpSendOptions { Type = "math.add" });

        // A worker takes the job over HTTP, as any Conveyor worker would, and completes it.
        var job = await LeaseOneAsync(server, queue);
        Assert.Equal("math.add", (string)job["kind"]!);
        Assert.Contains(MessageMapper.RpcTag, job["tags"]!.AsArray().Select(t => (string)t!));
        var sum = (int)job["payload"]!["a"]! + (int)job["payload"]!["b"]!;
        using var complete = await server.Http.PostAsJsonAsync($"/v1/jobs/{job["id"]}/complete",
            new { lease_token = (string)job["lease"]!["token"]!, result = new { sum } });
        Assert.Equal(200, (int)complete.StatusCode);

        var reply = await call.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(5, (int)JsonNode.Parse(reply.Text)!["sum"]!);
        Assert.Equal((long)job["id"]!, (long)reply.Headers[AmqpHeaders.JobId]!);
        Assert.Equal("completed", Encoding.UTF8.GetString((byte[])reply.Headers[AmqpHeaders.State]!));
        Assert.Matches("^[0-9a-f]{32}$", reply.CorrelationId);
        await TestBroker.Eventually(() => Task.FromResult(server.Ingest.PendingReplies == 0), "no reply left pending");
    }

    [Fact]
    public async Task An_rpc_job_that_dies_gets_an_error_reply()
    {
        var rabbit = TestBroker.UniqueName("rpcfail");
        var queue = TestBroker.UniqueName("rpcfailjobs");
        await using (var connection = await TestBroker.ConnectAsync()) await TestBroker.DeclareQueueAsync(connection, rabbit);
        await using var server = await IngestServer.StartAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });

        var call = client.CallAsync(rabbit, "{}"u8.ToArray());
        var job = await LeaseOneAsync(server, queue);
        using var fail = await server.Http.PostAsJsonAsync($"/v1/jobs/{job["id"]}/fail",
            new { lease_token = (string)job["lease"]!["token"]!, error = "card declined", dead = true });
        Assert.Equal(200, (int)fail.StatusCode);

        var error = await Assert.ThrowsAsync<AmqpException>(() => call.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(AmqpFailure.RemoteError, error.Failure);
        Assert.Contains("card declined", error.Message);
    }

    [Fact]
    public async Task A_reply_still_owed_after_a_restart_is_sent_when_the_job_finishes()
    {
        var rabbit = TestBroker.UniqueName("rpcrestart");
        var queue = TestBroker.UniqueName("rpcrestartjobs");
        await using (var connection = await TestBroker.ConnectAsync()) await TestBroker.DeclareQueueAsync(connection, rabbit);
        await using var server = await IngestServer.StartAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);
        await using var client = await AmqpClient.ConnectAsync(new AmqpClientOptions { Uri = TestBroker.Uri });

        var call = client.CallAsync(rabbit, """{"slow":true}"""u8.ToArray());
        await TestBroker.Eventually(async () => await server.CountAsync(queue) == 1, "the RPC job");
        await server.StopAsync();
        await server.StartAgainAsync(TestBroker.Uri, [new AmqpIngestRoute(rabbit, queue)]);

        var job = await LeaseOneAsync(server, queue);
        using var complete = await server.Http.PostAsJsonAsync($"/v1/jobs/{job["id"]}/complete",
            new { lease_token = (string)job["lease"]!["token"]!, result = "done" });
        var reply = await call.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("\"done\"", reply.Text);
    }
}
