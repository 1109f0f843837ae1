using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Server;

namespace Conveyor.Submissions.Tests;

/// <summary>A real server on a loopback port: its own data directory, and on PostgreSQL its own schema.</summary>
public sealed class SubmissionServer : IAsyncDisposable
{
    private static int _counter;
    private readonly RunningServer _server;
    private readonly string? _schema;

    private SubmissionServer(RunningServer server, string directory, string? schema)
    {
        _server = server;
        Directory = directory;
        _schema = schema;
        Http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
    }

    public HttpClient Http { get; }

    public string Directory { get; }

    public Uri BaseAddress => _server.BaseAddress;

    public IServiceProvider Services => _server.Services;

    public static async Task<SubmissionServer> StartAsync(bool postgres, Func<ServerOptions, ServerOptions>? configure = null)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("conveyor-submissions-http-").FullName;
        var schema = postgres ? TestPostgres.UniqueSchema("subhttp") : null;
        var options = new ServerOptions
        {
            Port = 0,
            DataDirectory = directory,
            PostgresConnectionString = postgres ? TestPostgres.ConnectionString : null,
            PostgresSchema = schema ?? ServerOptions.DefaultPostgresSchema,
            MaxJobBytes = 64 * 1024,
            MaxBodyBytes = 1024 * 1024,
            Out = null,
        };
        options = configure?.Invoke(options) ?? options;
        var server = await ConveyorServer.StartAsync(options);
        return new SubmissionServer(server, directory, schema);
    }

    public static string UniqueQueue(string prefix = "sub") => $"{prefix}{Interlocked.Increment(ref _counter)}-{Environment.ProcessId}";

    public async Task<(int Status, JsonNode? Body)> Send(HttpMethod method, string url, string? body = null, string type = "application/json")
    {
        using var request = new HttpRequestMessage(method, url);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, type);
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 || !(response.Content.Headers.ContentType?.MediaType?.Contains("json") ?? false) ? null : JsonNode.Parse(text));
    }

    public Task<(int Status, JsonNode? Body)> Post(string url, string? body = null, string type = "application/json") => Send(HttpMethod.Post, url, body, type);

    public Task<(int Status, JsonNode? Body)> Get(string url) => Send(HttpMethod.Get, url);

    public async Task<JsonNode> Submission(long id)
    {
        var (status, body) = await Get($"/v1/submissions/{id}");
        Assert.Equal(200, status);
        return body!;
    }

    public async Task<JsonArray> Reserve(string queue, int max = 1, string extra = "")
    {
        var (status, body) = await Post("/v1/chunks/reserve", $$"""{"queue":"{{queue}}","max":{{max}},"lease_ms":60000{{extra}}}""");
        Assert.Equal(200, status);
        return body!["chunks"]!.AsArray();
    }

    public async Task<(int Status, JsonNode? Body)> Complete(JsonNode chunk, string result = "null") =>
        await Post("/v1/chunks/complete", $$"""{"submission_id":{{chunk["submission_id"]}},"index":{{chunk["index"]}},"lease_token":"{{chunk["lease_token"]}}","result":{{result}}}""");

    /// <summary>The NDJSON results, one parsed line each.</summary>
    public async Task<(int Status, List<JsonNode> Lines)> Results(long id, bool partial = false)
    {
        using var response = await Http.GetAsync($"/v1/submissions/{id}/results{(partial ? "?partial=true" : "")}", HttpCompletionOption.ResponseHeadersRead);
        var lines = new List<JsonNode>();
        if (!response.IsSuccessStatusCode) return ((int)response.StatusCode, lines);
        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line) lines.Add(JsonNode.Parse(line)!);
        return (200, lines);
    }

    /// <summary>Polls a condition until it holds, failing after the timeout: for effects of another connection's end.</summary>
    public static async Task Eventually(Func<Task<bool>> condition, string what, int timeoutMs = 10_000)
    {
        using var timeout = new CancellationTokenSource(timeoutMs);
        while (!await condition())
        {
            if (timeout.IsCancellationRequested) Assert.Fail($"Timed out waiting for {what}.");
            await Task.Delay(20);
        }
    }

    public async Task<ConsumerSocket> ConnectAsync(string query = "")
    {
        var socket = new ClientWebSocket();
        var uri = new UriBuilder(BaseAddress) { Scheme = "ws", Path = "/v1/consume", Query = query }.Uri;
        await socket.ConnectAsync(uri, CancellationToken.None);
        return new ConsumerSocket(socket);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _server.DisposeAsync();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
        if (_schema is not null) await TestPostgres.DropSchemaAsync(_schema);
    }
}

/// <summary>A test-side /v1/consume client: send a message, read the next one that is not a server ping.</summary>
public sealed class ConsumerSocket(ClientWebSocket socket) : IDisposable
{
    public ClientWebSocket Socket => socket;

    public async Task SendAsync(string json) =>
        await socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    public async Task<JsonNode> ReceiveAsync(bool skipPings = true)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            WebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(chunk, timeout.Token);
                if (result.MessageType == WebSocketMessageType.Close) throw new WebSocketException("closed by the server");
                buffer.Write(chunk, 0, result.Count);
            } while (!result.EndOfMessage);
            var message = JsonNode.Parse(buffer.ToArray())!;
            if (skipPings && (string?)message["type"] == "ping") continue;
            return message;
        }
    }

    public async Task<JsonNode> RequestAsync(string json)
    {
        await SendAsync(json);
        return await ReceiveAsync();
    }

    public void Dispose() => socket.Dispose();
}

internal static class Json
{
    public static long Long(this JsonNode? node) => node!.GetValue<long>();

    public static string Text(this JsonNode? node) => node!.GetValue<string>();

    public static string Compact(this JsonNode? node) => node?.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) ?? "null";
}
