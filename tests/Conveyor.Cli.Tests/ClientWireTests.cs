using System.Net;
using System.Text.Json;

namespace Conveyor.Cli.Tests;

// Inside the namespace so the client's AckRequest wins over Conveyor.Core's type of the same name.
using Conveyor.Client;

/// <summary>The SDK methods the CLI does not call, checked at the wire: paths, bodies, and error classification.</summary>
public sealed class ClientWireTests
{
    private readonly StubHandler _http = new();

    private ConveyorClient Client(string address = "http://127.0.0.1:5080") =>
        new(new HttpClient(_http, disposeHandler: false), new Uri(address));

    [Fact]
    public async Task Batch_enqueue_posts_a_json_array_and_reads_ids_in_request_order()
    {
        _http.Respond = _ => StubHandler.Json(
            HttpStatusCode.OK, """{"count":2,"jobs":[{"id":1,"replayed":false},{"id":2,"replayed":true}]}""");

        var result = await Client().EnqueueBatchAsync(
            "emails", [new EnqueueRequest { Kind = "a" }, new EnqueueRequest { DelayMs = 5 }]);

        Assert.Equal("/v1/queues/emails/jobs/batch", _http.Requests[0].Path);
        Assert.Equal("""[{"kind":"a"},{"delay_ms":5}]""", _http.Requests[0].Body);
        Assert.Equal(2, result.Count);
        Assert.Equal([(1L, false), (2L, true)], result.Jobs.Select(j => (j.Id, j.Replayed)));
    }

    [Fact]
    public async Task Ack_posts_completes_and_fails_and_returns_per_item_outcomes()
    {
        _http.Respond = _ => StubHandler.Json(
            HttpStatusCode.OK, """{"results":[{"id":1,"status":200,"state":"completed"},{"id":2,"status":409,"detail":"stale"}]}""");
        using var result = JsonDocument.Parse("7");

        var outcomes = await Client().AckAsync(new AckRequest
        {
            Complete = [new AckComplete { Id = 1, LeaseToken = "t1", Result = result.RootElement }],
            Fail = [new AckFail { Id = 2, LeaseToken = "t2", Error = "boom", RetryInMs = 10 }],
        });

        Assert.Equal(
            """{"complete":[{"id":1,"lease_token":"t1","result":7}],"""
            + "\"fail\":[{\"id\":2,\"lease_token\":\"t2\",\"error\":\"boom\",\"retry_in_ms\":10}]}",
            Assert.Single(_http.Requests).Body);
        Assert.Equal(
            [(1L, 200, "completed", null), (2L, 409, null, "stale")],
            outcomes.Select(o => (o.Id, o.Status, o.State, o.Detail)));
    }

    [Fact]
    public async Task Heartbeat_posts_the_token_extension_and_progress()
    {
        _http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, Jobs.Json(3, "running", leased: true));
        using var progress = JsonDocument.Parse("""{"done":50}""");

        var job = await Client("http://host/conveyor").HeartbeatAsync(3, "t", extendMs: 60_000, progress.RootElement);

        Assert.Equal("/conveyor/v1/jobs/3/heartbeat", _http.Requests[0].Path);
        Assert.Equal("""{"lease_token":"t","extend_ms":60000,"progress":{"done":50}}""", _http.Requests[0].Body);
        Assert.Equal(Jobs.Token, job.Lease?.Token);
    }

    [Theory]
    [InlineData(HttpStatusCode.Conflict, false)]
    [InlineData(HttpStatusCode.NotFound, false)]
    [InlineData(HttpStatusCode.TooManyRequests, true)]
    [InlineData(HttpStatusCode.ServiceUnavailable, true)]
    public async Task Server_errors_carry_status_detail_and_whether_a_retry_can_help(HttpStatusCode status, bool transient)
    {
        _http.Respond = _ => StubHandler.Problem(status, "Something specific happened.");

        var error = await Assert.ThrowsAnyAsync<ConveyorException>(() => Client().CancelAsync(5));

        Assert.Equal(status, error.StatusCode);
        Assert.Equal(transient, error.IsTransient);
        Assert.Equal("Something specific happened.", error.Message);
    }

    [Fact]
    public async Task A_connection_failure_is_transient_and_has_no_status()
    {
        _http.Respond = _ => throw new HttpRequestException("Connection refused", new IOException("Connection refused"));

        var error = await Assert.ThrowsAnyAsync<ConveyorException>(() => Client().GetStatsAsync());

        Assert.Null(error.StatusCode);
        Assert.True(error.IsTransient);
    }

    [Fact]
    public async Task Cancellation_by_the_caller_is_not_wrapped()
    {
        _http.Respond = _ => throw new TaskCanceledException();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client().ListQueuesAsync(cancelled.Token));
    }
}
