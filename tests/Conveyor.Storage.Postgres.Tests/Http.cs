using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>A tiny JSON-over-HTTP client for the v1 API, enough for the multi-server tests.</summary>
internal sealed class Http(Uri baseAddress) : IDisposable
{
    private readonly HttpClient _client = new() { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };

    public async Task<(HttpStatusCode Status, JsonNode? Body, string? ContentType)> SendAsync(HttpMethod method, string path, JsonNode? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await _client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response.Content.Headers.ContentType?.MediaType);
    }

    public async Task<JsonNode> PostOkAsync(string path, JsonNode body)
    {
        var (status, json, _) = await SendAsync(HttpMethod.Post, path, body);
        Assert.True(status is HttpStatusCode.OK or HttpStatusCode.Created, $"POST {path} answered {(int)status}: {json?.ToJsonString()}");
        return json!;
    }

    public async Task<JsonNode> GetOkAsync(string path)
    {
        var (status, json, _) = await SendAsync(HttpMethod.Get, path);
        Assert.True(status == HttpStatusCode.OK, $"GET {path} answered {(int)status}: {json?.ToJsonString()}");
        return json!;
    }

    public void Dispose() => _client.Dispose();
}
