using System.Text.Json.Nodes;

namespace Conveyor.Server.Tests;

/// <summary>Push delivery to a real webhook listener: idempotency header, secrets, retries, dead, several destinations, order.</summary>
public sealed class DeliveryTests : IAsyncLifetime
{
    private const string Secret = "CONVEYOR_TEST_HOOK_TOKEN";
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-push-").FullName;
    private RunningServer _server = null!;
    private HttpClient _http = null!;
    private WebhookReceiver _hooks = null!;

    public async Task InitializeAsync()
    {
        Environment.SetEnvironmentVariable(Secret, "s3cret");
        _hooks = await WebhookReceiver.StartAsync();
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = _directory,
            Out = null,
            DeliverySecrets = [Secret],
            DeliveryRetryBase = TimeSpan.FromMilliseconds(20),
            DeliveryTimeout = TimeSpan.FromSeconds(10),
            DeliveryConcurrency = 16,
        });
        _http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _hooks.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    private async Task<JsonNode> Finished(long id)
    {
        for (var i = 0; i < 6; i++)
        {
            var (status, body, _) = await _http.Get($"/v1/jobs/{id}/result?wait_ms=5000");
            if (status == 200) return body!;
            Assert.Equal(202, status);
        }
        throw new TimeoutException($"Job {id} did not finish within 30 s.");
    }

    private string Hook(string path, string extra = "") => $$"""{"type":"http","url":"{{_hooks.Url(path)}}"{{extra}}}""";

    [Fact]
    public async Task Delivers_the_payload_with_a_stable_idempotency_key_and_resolved_secret()
    {
        var queue = HttpJson.UniqueQueue("push");
        var placeholder = "{{" + Secret + "}}";
        var job = await _http.Enqueue(queue, $$"""
            {"kind":"order.created","payload":{"order":42},
             "destination":{{Hook("/orders", $$""","method":"PUT","headers":{"Authorization":"Bearer {{placeholder}}","X-Team":"shop"}""")}}}
            """);
        var id = (long)job["id"]!;
        Assert.Equal("PUT", (string)job["destinations"]![0]!["method"]!);

        var done = await Finished(id);
        Assert.Equal("completed", (string)done["state"]!);
        Assert.Equal(200, (int)done["result"]!["delivered"]![0]!["status"]!);

        var hook = Assert.Single(_hooks.Received, r => r.Path == "/orders");
        Assert.Equal("PUT", hook.Method);
        Assert.Equal("""{"order":42}""", hook.Body);
        Assert.Equal($"conveyor-job-{id}", hook.Headers["x-idempotent-key"]);
        Assert.Equal("Bearer s3cret", hook.Headers["authorization"]);
        Assert.Equal("shop", hook.Headers["x-team"]);
        Assert.StartsWith("application/json", hook.Headers["content-type"]);

        // The secret's value never reaches the database: the job keeps the placeholder.
        var (_, stored, _) = await _http.Get($"/v1/jobs/{id}");
        Assert.Equal($"Bearer {placeholder}", (string)stored!["destinations"]![0]!["headers"]!["Authorization"]!);
    }

    [Fact]
    public async Task Retries_with_the_same_key_until_a_2xx_and_records_each_failure()
    {
        var queue = HttpJson.UniqueQueue("push");
        _hooks.Respond = (path, _, earlier) => path == "/flaky" && earlier < 2 ? (500, TimeSpan.Zero) : (200, TimeSpan.Zero);
        var id = (long)(await _http.Enqueue(queue, $$"""{"payload":{"n":1},"idempotency_key":"order-7","destination":{{Hook("/flaky")}}}"""))["id"]!;

        var done = await Finished(id);
        Assert.Equal("completed", (string)done["state"]!);
        Assert.Equal(3, (int)done["attempt"]!);
        var errors = done["errors"]!.AsArray();
        Assert.Equal(2, errors.Count);
        Assert.Contains("HTTP 500", (string)errors[0]!["message"]!);
        Assert.Contains("receiver says no (500)", (string)errors[0]!["message"]!);

        var hooks = _hooks.Received.Where(r => r.Path == "/flaky").ToList();
        Assert.Equal([500, 500, 200], hooks.Select(h => h.Status));
        Assert.All(hooks, h => Assert.Equal("order-7", h.Headers["x-idempotent-key"]));
    }

    [Fact]
    public async Task A_destination_that_keeps_failing_makes_the_job_dead_after_max_attempts()
    {
        var queue = HttpJson.UniqueQueue("push");
        _hooks.Respond = (path, _, _) => path == "/down" ? (503, TimeSpan.Zero) : (200, TimeSpan.Zero);
        var id = (long)(await _http.Enqueue(queue, $$"""{"max_attempts":3,"destination":{{Hook("/down")}}}"""))["id"]!;

        var done = await Finished(id);
        Assert.Equal("dead", (string)done["state"]!);
        Assert.Equal(3, done["errors"]!.AsArray().Count);
        Assert.Equal(3, _hooks.Received.Count(r => r.Path == "/down"));
    }

    [Fact]
    public async Task A_slow_destination_fails_by_its_timeout()
    {
        var queue = HttpJson.UniqueQueue("push");
        _hooks.Respond = (path, _, _) => path == "/slow" ? (200, TimeSpan.FromSeconds(20)) : (200, TimeSpan.Zero);
        var id = (long)(await _http.Enqueue(queue, $$"""{"max_attempts":1,"destination":{{Hook("/slow", ""","timeout_ms":200""")}}}"""))["id"]!;

        var done = await Finished(id);
        Assert.Equal("dead", (string)done["state"]!);
        Assert.Contains("no response within 200 ms", (string)done["errors"]![0]!["message"]!);
    }

    [Fact]
    public async Task With_several_destinations_a_retry_goes_only_to_those_not_yet_delivered()
    {
        var queue = HttpJson.UniqueQueue("push");
        _hooks.Respond = (path, _, earlier) => path == "/b" && earlier == 0 ? (502, TimeSpan.Zero) : (200, TimeSpan.Zero);
        var id = (long)(await _http.Enqueue(queue, $$"""{"payload":"hi","destinations":[{{Hook("/a")}},{{Hook("/b")}}]}"""))["id"]!;

        var done = await Finished(id);
        Assert.Equal("completed", (string)done["state"]!);
        Assert.Equal(2, (int)done["attempt"]!);
        Assert.Single(_hooks.Received, r => r.Path == "/a");
        Assert.Equal([502, 200], _hooks.Received.Where(r => r.Path == "/b").Select(r => r.Status));
        var delivered = done["result"]!["delivered"]!.AsArray();
        Assert.Equal([1, 2], delivered.Select(d => (int)d!["attempt"]!));
        Assert.Contains("destination 1", (string)done["errors"]![0]!["message"]!);
    }

    [Fact]
    public async Task Jobs_sharing_a_partition_key_are_delivered_in_order_while_keys_go_in_parallel()
    {
        var queue = HttpJson.UniqueQueue("push");
        // Every fifth job fails once: the rest of its partition must wait for its retry.
        _hooks.Respond = (path, body, earlier) =>
            path.StartsWith("/part/", StringComparison.Ordinal) && int.Parse(body, System.Globalization.CultureInfo.InvariantCulture) % 5 == 0 && earlier % 2 == 0
                ? (500, TimeSpan.FromMilliseconds(2)) : (200, TimeSpan.FromMilliseconds(2));
        const int perKey = 15;
        var keys = new[] { "k1", "k2", "k3" };
        var batch = new JsonArray();
        for (var i = 0; i < perKey; i++)
        {
            foreach (var key in keys)
            {
                batch.Add(JsonNode.Parse($$"""{"payload":{{i}},"partition_key":"{{key}}","destination":{{Hook($"/part/{key}")}}}"""));
            }
        }
        var (status, _, _) = await _http.Post($"/v1/queues/{queue}/jobs/batch", batch.ToJsonString());
        Assert.Equal(200, status);

        var all = await _hooks.WaitForAsync(r => keys.All(k => r.Count(h => h.Path == $"/part/{k}" && h.Status == 200) == perKey));
        foreach (var key in keys)
        {
            var seen = all.Where(h => h.Path == $"/part/{key}").Select(h => (N: int.Parse(h.Body, System.Globalization.CultureInfo.InvariantCulture), h.Status)).ToList();
            // Strict order: each job is tried (and retried) only after every earlier job of its key succeeded.
            for (var i = 1; i < seen.Count; i++)
            {
                Assert.True(seen[i].N == seen[i - 1].N + (seen[i - 1].Status == 200 ? 1 : 0),
                    $"partition {key} went {seen[i - 1]} then {seen[i]}");
            }
            Assert.Equal(Enumerable.Range(0, perKey), seen.Where(s => s.Status == 200).Select(s => s.N));
        }
        Assert.True(_hooks.MaxInFlight > 1, "different partition keys should be delivered in parallel");
    }

    [Fact]
    public async Task A_queue_default_destination_serves_jobs_without_one_and_retention_zero_deletes_them()
    {
        var queue = HttpJson.UniqueQueue("push");
        var (status, settings, _) = await _http.Send(HttpMethod.Put, $"/v1/queues/{queue}/settings",
            $$"""{"retention_ms":0,"destinations":[{{Hook("/default")}}]}""");
        Assert.Equal(200, status);
        Assert.True((bool)settings!["settings"]!["push"]!);
        Assert.Equal(_hooks.Url("/default"), (string)settings["settings"]!["destinations"]![0]!["url"]!);

        var id = (long)(await _http.Enqueue(queue, """{"payload":{"via":"default"}}"""))["id"]!;
        await _hooks.WaitForAsync(r => r.Any(h => h.Path == "/default"));
        // Delivered, then deleted at once (retention 0): the RPC wait ends with no job.
        for (var i = 0; i < 50; i++)
        {
            var (found, _, _) = await _http.Get($"/v1/jobs/{id}/result?wait_ms=200");
            if (found == 404) return;
        }
        Assert.Fail($"Job {id} was delivered but not deleted.");
    }

    [Fact]
    public async Task Bad_destinations_are_refused_with_a_sentence_and_nothing_is_enqueued()
    {
        var queue = HttpJson.UniqueQueue("push");
        string[] bad =
        [
            """{"destination":{"type":"ftp","url":"ftp://x"}}""",
            """{"destination":{"type":"http"}}""",
            """{"destination":{"type":"http","url":"http://127.0.0.1:1/","method":"GET"}}""",
            """{"destination":{"type":"http","url":"http://127.0.0.1:1/","headers":{"X-Key":"{{HOME}}"}}}""",
            """{"destination":{"type":"amqp","exchange":"x"}}""",
            """{"destination":{"type":"http","url":"http://127.0.0.1:1/"},"destinations":[]}""",
            """{"destinations":[]}""",
            """{"destination":{"type":"http","url":"http://127.0.0.1:1/","colour":"red"}}""",
        ];
        foreach (var body in bad)
        {
            var (status, problem, type) = await _http.Post($"/v1/queues/{queue}/jobs", body);
            Assert.Equal(400, status);
            Assert.Equal("application/problem+json", type);
            Assert.False(string.IsNullOrEmpty((string?)problem!["detail"]));
        }
        var (_, page, _) = await _http.Get($"/v1/jobs?queue={queue}");
        Assert.Empty(page!["jobs"]!.AsArray());
    }

    [Fact]
    public async Task Push_and_pull_queues_do_not_mix()
    {
        var pull = HttpJson.UniqueQueue("pull");
        await _http.Enqueue(pull);
        var (status, problem, _) = await _http.Post($"/v1/queues/{pull}/jobs", $$"""{"destination":{{Hook("/x")}}}""");
        Assert.Equal(409, status);
        Assert.Contains("pull queue", (string)problem!["detail"]!);

        var push = HttpJson.UniqueQueue("push");
        _hooks.Respond = (_, _, _) => (200, TimeSpan.Zero);
        await _http.Enqueue(push, $$"""{"destination":{{Hook("/y")}}}""");
        (status, problem, _) = await _http.Post($"/v1/queues/{push}/lease", """{"max":1}""");
        Assert.Equal(409, status);
        Assert.Contains("push queue", (string)problem!["detail"]!);

        // Neither side switches while it holds unfinished jobs: they would go to the wrong kind of consumer.
        (status, problem, _) = await _http.Send(HttpMethod.Put, $"/v1/queues/{pull}/settings", """{"push":true}""");
        Assert.Equal(409, status);
        var waiting = HttpJson.UniqueQueue("push");
        await _http.Enqueue(waiting, $$"""{"delay_ms":3600000,"destination":{{Hook("/later")}}}""");
        (status, problem, _) = await _http.Send(HttpMethod.Put, $"/v1/queues/{waiting}/settings", """{"push":false}""");
        Assert.Equal(409, status);
        Assert.Contains("deliver", (string)problem!["detail"]!);
    }
}
