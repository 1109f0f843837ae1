using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Conveyor.Server.Tests;

/// <summary>
/// A test-side /v1/jobs/socket client: messages go out with an id, answers come back to whoever waits for that id,
/// so many requests can be in flight at once as a real client would have them.
/// </summary>
public sealed class JobSocketClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonNode>> _waiting = new();
    private readonly ConcurrentQueue<JsonNode> _unmatched = new();
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly Task _reading;
    private int _next;

    private JobSocketClient(ClientWebSocket socket)
    {
        _socket = socket;
        _reading = Task.Run(ReadAsync);
    }

    /// <summary>Answers that named no id, or an id nobody waited for (a parse error's answer has none).</summary>
    public IReadOnlyCollection<JsonNode> Unmatched => _unmatched;

    public static async Task<JobSocketClient> ConnectAsync(Uri server, string? key = null, string query = "")
    {
        var socket = new ClientWebSocket();
        if (key is not null) socket.Options.SetRequestHeader("Authorization", $"Bearer {key}");
        var uri = new UriBuilder(server) { Scheme = "ws", Path = "/v1/jobs/socket", Query = query }.Uri;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await socket.ConnectAsync(uri, timeout.Token);
        return new JobSocketClient(socket);
    }

    /// <summary>Sends a message (its "id" is set here) and waits for its answer.</summary>
    public Task<JsonNode> RequestAsync(JsonObject message)
    {
        var id = $"m{Interlocked.Increment(ref _next)}";
        message["id"] = id;
        var answer = new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[id] = answer;
        return SendThenWait(message.ToJsonString(), answer.Task);
    }

    public Task<JsonNode> RequestAsync(string type, string? queue = null, JsonNode? body = null, long? jobId = null)
    {
        var message = new JsonObject { ["type"] = type };
        if (queue is not null) message["queue"] = queue;
        if (body is not null) message["body"] = body;
        if (jobId is not null) message["job_id"] = jobId;
        return RequestAsync(message);
    }

    public async Task SendRawAsync(byte[] bytes, WebSocketMessageType type = WebSocketMessageType.Text)
    {
        await _sending.WaitAsync();
        try
        {
            await _socket.SendAsync(bytes, type, endOfMessage: true, CancellationToken.None);
        }
        finally
        {
            _sending.Release();
        }
    }

    /// <summary>Waits for the next answer that carries no id we asked with.</summary>
    public async Task<JsonNode> NextUnmatchedAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            if (_unmatched.TryDequeue(out var message)) return message;
            await Task.Delay(10, timeout.Token);
        }
    }

    private async Task<JsonNode> SendThenWait(string json, Task<JsonNode> answer)
    {
        await SendRawAsync(Encoding.UTF8.GetBytes(json));
        return await answer.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private async Task ReadAsync()
    {
        var chunk = new byte[64 * 1024];
        try
        {
            while (true)
            {
                using var buffer = new MemoryStream();
                WebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(chunk, CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close) return;
                    buffer.Write(chunk, 0, result.Count);
                } while (!result.EndOfMessage);
                var message = JsonNode.Parse(buffer.ToArray())!;
                if ((string?)message["type"] == "ping") continue;
                if (message["id"] is JsonValue id && _waiting.TryRemove(id.ToString(), out var waiter)) waiter.SetResult(message);
                else _unmatched.Enqueue(message);
            }
        }
        catch (Exception e) when (e is WebSocketException or ObjectDisposedException)
        {
        }
        finally
        {
            foreach (var waiter in _waiting.Values) waiter.TrySetException(new WebSocketException("the jobs socket closed"));
        }
    }

    public async Task CloseAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        await _reading.WaitAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open) await CloseAsync();
        _socket.Dispose();
    }
}

public sealed class JobSocketTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private readonly HttpClient _http = server.Http;

    private static JsonNode Job(int n) => new JsonObject { ["kind"] = "t", ["payload"] = new JsonObject { ["n"] = n } };

    [Fact]
    public async Task A_job_enqueued_leased_and_acked_over_the_socket_answers_as_the_HTTP_routes_do()
    {
        var queue = HttpJson.UniqueQueue("sock");
        await using var socket = await JobSocketClient.ConnectAsync(_http.BaseAddress!);

        var enqueued = await socket.RequestAsync("enqueue", queue, Job(7));
        Assert.Equal("result", (string?)enqueued["type"]);
        Assert.Equal(201, (int)enqueued["status"]!);
        var id = (long)enqueued["body"]!["id"]!;
        var (status, viaHttp, _) = await _http.Get($"/v1/jobs/{id}");
        Assert.Equal(200, status);
        Assert.Equal(7, (int)viaHttp!["payload"]!["n"]!);
        Assert.Equal((string?)viaHttp["state"], (string?)enqueued["body"]!["state"]);

        var leased = await socket.RequestAsync("lease", queue, JsonNode.Parse("""{"max":10,"wait_ms":5000,"lease_ms":60000}"""));
        Assert.Equal(200, (int)leased["status"]!);
        var job = leased["body"]!.AsArray().Single()!;
        Assert.Equal(id, (long)job["id"]!);
        var token = (string)job["lease"]!["token"]!;

        var beat = await socket.RequestAsync("heartbeat", body: new JsonObject { ["lease_token"] = token, ["progress"] = new JsonObject { ["done"] = 1 } }, jobId: id);
        Assert.Equal(200, (int)beat["status"]!);
        Assert.Equal(1, (int)beat["body"]!["progress"]!["done"]!);

        var acked = await socket.RequestAsync("ack", body: JsonNode.Parse($$$"""{"complete":[{"id":{{{id}}},"lease_token":"{{{token}}}","result":{"ok":true}}]}"""));
        Assert.Equal(200, (int)acked["status"]!);
        Assert.Equal(200, (int)acked["body"]!["results"]![0]!["status"]!);
        Assert.Equal("completed", (string?)(await _http.Get($"/v1/jobs/{id}")).Body!["state"]);

        // An empty queue's long poll answers 204 with no body, as the HTTP route does.
        var empty = await socket.RequestAsync("lease", queue, JsonNode.Parse("""{"wait_ms":50}"""));
        Assert.Equal(204, (int)empty["status"]!);
        Assert.Null(empty["body"]);
    }

    [Fact]
    public async Task A_message_traceparent_is_carried_by_its_job_as_the_header_is_over_HTTP()
    {
        var queue = HttpJson.UniqueQueue("socktrace");
        const string traceId = "5cf92f3577b34da6a3ce929d0e0e4737";
        await using var socket = await JobSocketClient.ConnectAsync(_http.BaseAddress!);
        var message = new JsonObject
        {
            ["type"] = "enqueue", ["queue"] = queue, ["body"] = Job(1), ["traceparent"] = $"00-{traceId}-00f067aa0ba902b7-01",
        };
        var enqueued = await socket.RequestAsync(message);
        Assert.Contains(traceId, (string)enqueued["body"]!["trace_parent"]!);
        Assert.Contains(traceId, (string)(await _http.Lease(queue)).Single()!["trace_parent"]!);
        // The next message names no trace: its job does not inherit the one before.
        var untraced = await socket.RequestAsync("enqueue", queue, Job(2));
        Assert.DoesNotContain(traceId, untraced["body"]!["trace_parent"]?.ToString() ?? "");
    }

    [Fact]
    public async Task Many_requests_in_flight_on_one_socket_are_each_answered_once_under_their_own_id()
    {
        var queue = HttpJson.UniqueQueue("sockmany");
        await using var socket = await JobSocketClient.ConnectAsync(_http.BaseAddress!);
        var answers = await Task.WhenAll(Enumerable.Range(0, 300).Select(n => socket.RequestAsync("enqueue", queue, Job(n))));
        Assert.All(answers, a => Assert.Equal(201, (int)a["status"]!));
        // Each answer carries the job its own message asked for.
        var payloads = answers.Select(a => (int)a["body"]!["payload"]!["n"]!).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 300), payloads);
        Assert.Equal(300, answers.Select(a => (long)a["body"]!["id"]!).Distinct().Count());
        Assert.Equal(300, (int)(await _http.Counts(queue))["available"]!);

        var batch = await socket.RequestAsync("enqueue_batch", queue, JsonNode.Parse("""[{"payload":1},{"payload":2}]"""));
        Assert.Equal(200, (int)batch["status"]!);
        Assert.Equal(2, (int)batch["body"]!["count"]!);
        Assert.Equal(302, (int)(await _http.Counts(queue))["available"]!);
    }

    [Fact]
    public async Task Bad_messages_get_a_clear_error_change_nothing_and_leave_the_socket_usable()
    {
        var queue = HttpJson.UniqueQueue("sockbad");
        await using var socket = await JobSocketClient.ConnectAsync(_http.BaseAddress!);

        async Task<string> Refused(JsonObject message, int status)
        {
            var answer = await socket.RequestAsync(message);
            Assert.Equal("error", (string?)answer["type"]);
            Assert.Equal(status, (int)answer["status"]!);
            return (string)answer["detail"]!;
        }

        Assert.Contains("not one of enqueue", await Refused(new JsonObject { ["type"] = "explode" }, 400));
        Assert.Contains("needs a type", await Refused(new JsonObject { ["queue"] = queue }, 400));
        Assert.Contains("'colour' is not a field", await Refused(new JsonObject { ["type"] = "enqueue", ["queue"] = queue, ["colour"] = "red" }, 400));
        Assert.Contains("needs a queue", await Refused(new JsonObject { ["type"] = "enqueue", ["body"] = Job(1) }, 400));
        Assert.Contains("needs a job_id", await Refused(new JsonObject { ["type"] = "heartbeat", ["body"] = new JsonObject() }, 400));
        // The same sentence the HTTP route answers with.
        var (_, viaHttp, _) = await _http.Post($"/v1/queues/{queue}/jobs", """{"kind":"t","pay":1}""");
        Assert.Equal((string)viaHttp!["detail"]!,
            await Refused(new JsonObject { ["type"] = "enqueue", ["queue"] = queue, ["body"] = JsonNode.Parse("""{"kind":"t","pay":1}""") }, 400));
        Assert.Contains("queue", await Refused(new JsonObject { ["type"] = "enqueue", ["queue"] = "bad queue!", ["body"] = Job(1) }, 400));
        var big = new JsonObject { ["kind"] = "t", ["payload"] = new string('x', 70 * 1024) };
        Assert.Contains("over the limit", await Refused(new JsonObject { ["type"] = "enqueue", ["queue"] = queue, ["body"] = big }, 413));
        Assert.Contains("lease_token", await Refused(new JsonObject { ["type"] = "ack", ["body"] = JsonNode.Parse("""{"complete":[{"id":1}]}""") }, 400));

        await socket.SendRawAsync("""{"type":"enqueue","#"""u8.ToArray());
        var broken = await socket.NextUnmatchedAsync();
        Assert.Equal(400, (int)broken["status"]!);
        Assert.Contains("not valid JSON", (string)broken["detail"]!);
        await socket.SendRawAsync([1, 2, 3], WebSocketMessageType.Binary);
        Assert.Contains("not binary", (string)(await socket.NextUnmatchedAsync())["detail"]!);

        Assert.DoesNotContain(queue, (await _http.Get("/v1/queues")).Body!.ToJsonString());
        Assert.Equal(201, (int)(await socket.RequestAsync("enqueue", queue, Job(1)))["status"]!);
        Assert.Equal("pong", (string?)(await socket.RequestAsync(new JsonObject { ["type"] = "ping" }))["type"]);
    }

    [Fact]
    public async Task Jobs_leased_on_a_socket_and_not_acked_are_released_when_it_closes()
    {
        var queue = HttpJson.UniqueQueue("sockrel");
        await _http.Enqueue(queue);
        await _http.Enqueue(queue);
        var socket = await JobSocketClient.ConnectAsync(_http.BaseAddress!);
        var leased = (await socket.RequestAsync("lease", queue, JsonNode.Parse("""{"max":2,"wait_ms":5000,"lease_ms":600000}""")))["body"]!.AsArray();
        Assert.Equal(2, leased.Count);
        var done = leased[0]!;
        var ack = await socket.RequestAsync("ack", body: JsonNode.Parse(
            $$"""{"complete":[{"id":{{(long)done["id"]!}},"lease_token":"{{(string)done["lease"]!["token"]!}}"}]}"""));
        Assert.Equal(200, (int)ack["body"]!["results"]![0]!["status"]!);
        await socket.DisposeAsync();

        // Not after the ten-minute lease: the close hands the other job back at once (a long poll waits for it).
        var again = await _http.Lease(queue, max: 2, waitMs: 20_000);
        var job = Assert.Single(again);
        Assert.Equal((long)leased[1]!["id"]!, (long)job!["id"]!);
        Assert.Equal(1, (int)(await _http.Counts(queue))["completed"]!);
    }

    [Fact]
    public async Task A_plain_GET_is_told_to_upgrade()
    {
        var (status, body, type) = await _http.Get("/v1/jobs/socket");
        Assert.Equal(400, status);
        Assert.Equal("application/problem+json", type);
        Assert.Contains("WebSocket", (string)body!["detail"]!);
        Assert.Equal(400, (await _http.Get("/v1/jobs/socket?heartbeat_ms=5")).Status);
    }
}

public sealed class JobSocketAccessTests(KeyedServerFixture server) : IClassFixture<KeyedServerFixture>
{
    [Fact]
    public async Task Each_message_is_checked_against_the_key_role()
    {
        var queue = HttpJson.UniqueQueue("sockauth");
        await using var producer = await JobSocketClient.ConnectAsync(server.Http.BaseAddress!, KeyedServerFixture.ProducerKey);
        Assert.Equal(201, (int)(await producer.RequestAsync("enqueue", queue, JsonNode.Parse("{}")))["status"]!);
        var denied = await producer.RequestAsync("lease", queue, JsonNode.Parse("""{"wait_ms":0}"""));
        Assert.Equal(403, (int)denied["status"]!);
        Assert.Contains("producer key may not lease", (string)denied["detail"]!);

        await using var consumer = await JobSocketClient.ConnectAsync(server.Http.BaseAddress!, KeyedServerFixture.ConsumerKey);
        Assert.Equal(403, (int)(await consumer.RequestAsync("enqueue", queue, JsonNode.Parse("{}")))["status"]!);
        Assert.Equal(200, (int)(await consumer.RequestAsync("lease", queue, JsonNode.Parse("""{"wait_ms":5000}""")))["status"]!);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/queues");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", KeyedServerFixture.AdminKey);
        var queues = JsonNode.Parse(await (await server.Http.SendAsync(request)).Content.ReadAsStringAsync())!.AsArray();
        var counts = queues.Single(q => (string)q!["name"]! == queue)!["counts"]!;
        Assert.Equal(1, (int)counts["running"]!);
    }

    [Fact]
    public async Task Connecting_needs_a_known_key()
    {
        var e = await Assert.ThrowsAsync<WebSocketException>(() => JobSocketClient.ConnectAsync(server.Http.BaseAddress!));
        Assert.Contains("401", e.Message);
        e = await Assert.ThrowsAsync<WebSocketException>(() => JobSocketClient.ConnectAsync(server.Http.BaseAddress!, "not-a-key-0123456789"));
        Assert.Contains("401", e.Message);
    }
}
