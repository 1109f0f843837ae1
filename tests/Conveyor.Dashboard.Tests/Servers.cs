using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Conveyor.Server;
using Conveyor.Server.Security;

namespace Conveyor.Dashboard.Tests;

/// <summary>A real server in process on a loopback port with its own SQLite file, plus an HTTP client to seed it.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly string _directory;
    private readonly RunningServer _server;

    private TestServer(string directory, RunningServer server, string? key)
    {
        _directory = directory;
        _server = server;
        Http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    public Uri BaseAddress => _server.BaseAddress;

    /// <summary>Seeds and checks with an admin key (when the server has keys).</summary>
    public HttpClient Http { get; }

    public static async Task<TestServer> StartAsync(IReadOnlyList<ApiKey>? keys = null, string? adminKey = null)
    {
        var directory = Directory.CreateTempSubdirectory("conveyor-dashboard-").FullName;
        var server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = directory,
            Out = null,
            ApiKeys = keys ?? [],
        });
        return new TestServer(directory, server, adminKey);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _server.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Requests that put jobs into the states a test needs, through the public API.</summary>
public static class Seed
{
    private static int _counter;

    public static string UniqueQueue(string prefix = "q") => $"{prefix}-{Interlocked.Increment(ref _counter)}";

    public static async Task<JsonNode?> Send(this HttpClient http, HttpMethod method, string url, string? json = null, int expect = 200)
    {
        using var request = new HttpRequestMessage(method, url);
        if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expect, $"{method} {url} answered {(int)response.StatusCode}, not {expect}: {text}");
        return text.Length == 0 ? null : JsonNode.Parse(text);
    }

    public static async Task<long> Enqueue(this HttpClient http, string queue, string json = """{"kind":"test.job","payload":{"n":1}}""")
    {
        var job = await http.Send(HttpMethod.Post, $"/v1/queues/{queue}/jobs", json, expect: 201);
        return (long)job!["id"]!;
    }

    /// <summary>Leases the next job of the queue (waiting up to 10 s for one) and returns its id and lease token.</summary>
    public static async Task<(long Id, string Token)> Lease(this HttpClient http, string queue)
    {
        var jobs = await http.Send(HttpMethod.Post, $"/v1/queues/{queue}/lease", """{"max":1,"lease_ms":600000,"wait_ms":10000,"worker":"test-worker"}""");
        var job = jobs!.AsArray().Single()!;
        return ((long)job["id"]!, (string)job["lease"]!["token"]!);
    }

    public static Task Complete(this HttpClient http, (long Id, string Token) lease, string result = """{"ok":true}""") =>
        http.Send(HttpMethod.Post, $"/v1/jobs/{lease.Id}/complete", $$"""{"lease_token":"{{lease.Token}}","result":{{result}}}""");

    public static Task<JsonNode?> Fail(this HttpClient http, (long Id, string Token) lease, string error, string? stack = null, bool dead = false) =>
        http.Send(HttpMethod.Post, $"/v1/jobs/{lease.Id}/fail", new JsonObject
        {
            ["lease_token"] = lease.Token,
            ["error"] = error,
            ["stack"] = stack,
            ["retry_in_ms"] = 0,
            ["dead"] = dead,
        }.ToJsonString());

    /// <summary>Enqueues one job and fails it for good: a dead job with one error.</summary>
    public static async Task<long> DeadJob(this HttpClient http, string queue, string error = "boom")
    {
        await http.Enqueue(queue, """{"kind":"test.dead","payload":{"n":1},"max_attempts":1}""");
        var lease = await http.Lease(queue);
        await http.Fail(lease, error, dead: true);
        return lease.Id;
    }

    public static async Task<string> State(this HttpClient http, long id) => (string)(await http.Send(HttpMethod.Get, $"/v1/jobs/{id}"))!["state"]!;

    public static async Task<JsonObject> Queue(this HttpClient http, string queue)
    {
        var queues = await http.Send(HttpMethod.Get, "/v1/queues");
        return queues!.AsArray().Single(q => (string)q!["name"]! == queue)!.AsObject();
    }
}
