using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Conveyor.Server.Tests;

public sealed class OpenApiTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private readonly HttpClient _http = server.Http;

    private async Task<JsonNode> Document() => JsonNode.Parse(await _http.GetStringAsync("/openapi/v1.json"))!;

    [Fact]
    public async Task Every_v1_route_is_described_with_a_summary_and_its_error_responses()
    {
        var document = await Document();
        var paths = document["paths"]!.AsObject();
        var expected = new[]
        {
            ("/v1/queues/{queue}/jobs", "post"), ("/v1/queues/{queue}/jobs/batch", "post"), ("/v1/queues/{queue}/lease", "post"),
            ("/v1/jobs/{id}/heartbeat", "post"), ("/v1/jobs/{id}/complete", "post"), ("/v1/jobs/{id}/fail", "post"),
            ("/v1/jobs/{id}/release", "post"), ("/v1/jobs/ack", "post"), ("/v1/jobs/{id}/result", "get"), ("/v1/jobs/{id}/cancel", "post"),
            ("/v1/jobs/{id}/retry", "post"), ("/v1/jobs/{id}", "get"), ("/v1/jobs/{id}/events", "get"), ("/v1/jobs", "get"),
            ("/v1/queues", "get"), ("/v1/queues/{queue}/pause", "post"), ("/v1/queues/{queue}/resume", "post"), ("/v1/stats", "get"),
            ("/v1/jobs/{id}", "delete"), ("/v1/queues/{queue}/settings", "put"), ("/v1/schedules", "get"), ("/v1/schedules/{name}", "get"),
            ("/v1/schedules/{name}", "put"), ("/v1/schedules/{name}", "delete"),
            ("/v1/stats/history", "get"), ("/v1/queues/{queue}/retry-dead", "post"),
            ("/v1/submissions", "post"), ("/v1/submissions", "get"), ("/v1/submissions/{id}", "get"), ("/v1/submissions/{id}/results", "get"),
            ("/v1/submissions/{id}/cancel", "post"), ("/v1/chunks/reserve", "post"), ("/v1/chunks/complete", "post"), ("/v1/chunks/fail", "post"),
            ("/v1/chunks/heartbeat", "post"), ("/v1/chunks/release", "post"), ("/v1/objects/{key}", "get"), ("/v1/objects/{key}", "put"),
        };
        Assert.Equal(expected.Select(e => e.Item1).Append("/v1/auth/whoami").Distinct().Order(), paths.Select(p => p.Key).Where(p => p.StartsWith("/v1/", StringComparison.Ordinal)).Order());
        foreach (var (path, method) in expected)
        {
            var operation = paths[path]![method];
            Assert.True(operation is not null, $"{method} {path} is missing");
            Assert.False(string.IsNullOrEmpty((string?)operation!["summary"]), $"{method} {path} has no summary");
            Assert.False(string.IsNullOrEmpty((string?)operation["operationId"]), $"{method} {path} has no operationId");
            var responses = operation["responses"]!.AsObject();
            Assert.Contains(responses, r => r.Key.StartsWith('2'));
            foreach (var status in new[] { "401", "403", "503" }) Assert.True(responses.ContainsKey(status), $"{method} {path} lacks {status}");
            Assert.Equal("application/problem+json", responses["401"]!["content"]!.AsObject().Single().Key);
        }
        Assert.NotNull(paths["/v1/queues/{queue}/jobs"]!["post"]!["requestBody"]);
        Assert.True(paths["/v1/queues/{queue}/jobs"]!["post"]!["responses"]!.AsObject().ContainsKey("413"));
        Assert.True(paths["/v1/jobs/{id}/complete"]!["post"]!["responses"]!.AsObject().ContainsKey("409"));
    }

    [Fact]
    public async Task The_documented_job_schema_has_exactly_the_fields_a_real_job_has()
    {
        var document = await Document();
        var documented = document["components"]!["schemas"]!["JobResponse"]!["properties"]!.AsObject().Select(p => p.Key).Order().ToList();
        var job = await _http.Enqueue(HttpJson.UniqueQueue("schema"));
        Assert.Equal(job.AsObject().Select(p => p.Key).Order().ToList(), documented);
        var request = document["components"]!["schemas"]!["EnqueueBody"]!["properties"]!.AsObject().Select(p => p.Key).ToList();
        Assert.Contains("delay_ms", request);
        Assert.Contains("idempotency_key", request);
    }

    [Fact]
    public async Task The_document_passes_a_real_OpenAPI_validator()
    {
        var file = Path.Combine(Path.GetTempPath(), $"conveyor-openapi-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, await _http.GetStringAsync("/openapi/v1.json"));
        try
        {
            var redocly = RedoclyPath();
            var info = new ProcessStartInfo(redocly, ["lint", file, "--format=stylish"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            info.Environment["REDOCLY_TELEMETRY"] = "off";
            info.Environment["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true";
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            Assert.True(process.ExitCode == 0, $"redocly lint failed:\n{await output}\n{await errors}");
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Installed by ./test.sh (npm @redocly/cli); a missing validator fails the test rather than skipping it.</summary>
    private static string RedoclyPath()
    {
        if (Environment.GetEnvironmentVariable("CONVEYOR_TEST_REDOCLY") is { Length: > 0 } configured) return configured;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Directory.Build.props"))) dir = dir.Parent;
        var path = dir is null ? null : Path.Combine(dir.FullName, ".artifacts", "tools", "node_modules", ".bin", "redocly");
        return path is not null && File.Exists(path)
            ? path
            : throw new InvalidOperationException("The OpenAPI validator is not installed: run ./test.sh (it installs @redocly/cli), or set CONVEYOR_TEST_REDOCLY.");
    }
}
