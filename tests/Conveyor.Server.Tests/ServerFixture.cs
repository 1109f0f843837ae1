using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Conveyor.Server.Tests;

/// <summary>A real server on a loopback port with its own SQLite file, shared by one test class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-http-").FullName;
    private RunningServer? _server;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = _directory,
            MaxJobBytes = 64 * 1024,
            MaxBodyBytes = 1024 * 1024,
            Out = null,
        });
        Http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        if (_server is not null) await _server.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Small helpers so tests read as requests and answers.</summary>
public static class HttpJson
{
    private static int _counter;

    public static string UniqueQueue(string prefix = "q") => $"{prefix}{Interlocked.Increment(ref _counter)}-{Environment.ProcessId}";

    public static StringContent Json(string json, string type = "application/json") => new(json, Encoding.UTF8, type);

    public static async Task<(int Status, JsonNode? Body, string? ContentType)> Send(this HttpClient http, HttpMethod method, string url, string? json = null, string type = "application/json")
    {
        using var request = new HttpRequestMessage(method, url);
        if (json is not null) request.Content = Json(json, type);
        // For big bodies, wait for the server's go-ahead: a 413 answered before the upload ends then arrives cleanly
        // instead of as a reset connection (the server refuses by Content-Length without reading the body).
        if (json is { Length: > 32 * 1024 }) request.Headers.ExpectContinue = true;
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response.Content.Headers.ContentType?.MediaType);
    }

    public static Task<(int Status, JsonNode? Body, string? ContentType)> Post(this HttpClient http, string url, string? json = null, string type = "application/json") =>
        http.Send(HttpMethod.Post, url, json, type);

    public static Task<(int Status, JsonNode? Body, string? ContentType)> Get(this HttpClient http, string url) => http.Send(HttpMethod.Get, url);

    public static async Task<JsonNode> Enqueue(this HttpClient http, string queue, string json = """{"kind":"t","payload":{"n":1}}""")
    {
        var (status, body, _) = await http.Post($"/v1/queues/{queue}/jobs", json);
        Assert.Equal(201, status);
        return body!;
    }

    public static async Task<JsonArray> Lease(this HttpClient http, string queue, int max = 1, int waitMs = 0)
    {
        var (status, body, _) = await http.Post($"/v1/queues/{queue}/lease", $$"""{"max":{{max}},"lease_ms":60000,"wait_ms":{{waitMs}},"worker":"t"}""");
        if (status == 204) return [];
        Assert.Equal(200, status);
        return body!.AsArray();
    }

    public static async Task<JsonObject> Counts(this HttpClient http, string queue)
    {
        var (_, body, _) = await http.Get("/v1/queues");
        return body!.AsArray().Single(q => (string)q!["name"]! == queue)!["counts"]!.AsObject();
    }
}
