using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using Conveyor.Server;
using Conveyor.Server.Security;

namespace Conveyor.Submissions.Tests;

/// <summary>API keys on the submission routes: producers submit, consumers reserve, and the WebSocket needs a consumer key.</summary>
public sealed class SubmissionAccessTests : IAsyncLifetime
{
    private const string Producer = "producer-key-0123456789";
    private const string Consumer = "consumer-key-0123456789";
    private SubmissionServer _server = null!;

    public async Task InitializeAsync() => _server = await SubmissionServer.StartAsync(postgres: false, o => new ServerOptions
    {
        Port = o.Port,
        DataDirectory = o.DataDirectory,
        Out = null,
        ApiKeys = [ApiKey.Create(Producer, ApiKeyRole.Producer), ApiKey.Create(Consumer, ApiKeyRole.Consumer)],
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<HttpStatusCode> Post(string key, string url, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await _server.Http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Producers_submit_consumers_reserve_and_neither_may_do_the_other()
    {
        var queue = SubmissionServer.UniqueQueue();
        var submit = $$"""{"queue":"{{queue}}","chunks":[{"data":1}]}""";
        var reserve = $$"""{"queue":"{{queue}}"}""";
        Assert.Equal(401, (await _server.Post("/v1/submissions", submit)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, await Post(Consumer, "/v1/submissions", submit));
        Assert.Equal(HttpStatusCode.Created, await Post(Producer, "/v1/submissions", submit));
        Assert.Equal(HttpStatusCode.Forbidden, await Post(Producer, "/v1/chunks/reserve", reserve));
        Assert.Equal(HttpStatusCode.OK, await Post(Consumer, "/v1/chunks/reserve", reserve));
        Assert.Equal(HttpStatusCode.Forbidden, await Post(Producer, "/v1/submissions/1/cancel", "{}"));
    }

    [Fact]
    public async Task The_websocket_needs_a_consumer_key()
    {
        var uri = new UriBuilder(_server.BaseAddress) { Scheme = "ws", Path = "/v1/consume" }.Uri;
        using (var anonymous = new ClientWebSocket())
        {
            var refused = await Assert.ThrowsAsync<WebSocketException>(() => anonymous.ConnectAsync(uri, CancellationToken.None));
            Assert.Contains("401", refused.Message);
        }
        using (var producer = new ClientWebSocket())
        {
            producer.Options.SetRequestHeader("Authorization", $"Bearer {Producer}");
            var refused = await Assert.ThrowsAsync<WebSocketException>(() => producer.ConnectAsync(uri, CancellationToken.None));
            Assert.Contains("403", refused.Message);
        }
        using var consumer = new ClientWebSocket();
        consumer.Options.SetRequestHeader("Authorization", $"Bearer {Consumer}");
        await consumer.ConnectAsync(uri, CancellationToken.None);
        Assert.Equal(WebSocketState.Open, consumer.State);
    }
}
