using System.Net;
using System.Text;
using Conveyor.Cli.CommandLine;
using Conveyor.Client;
using Conveyor.Server;

namespace Conveyor.Cli.Tests;

/// <summary>Runs the CLI in process with captured output, a fake environment, and canned HTTP answers.</summary>
internal sealed class CliHarness
{
    public StringWriter Out { get; } = new() { NewLine = "\n" };
    public StringWriter Error { get; } = new() { NewLine = "\n" };
    public Dictionary<string, string> Environment { get; } = [];
    public StubHandler Http { get; } = new();
    public List<Uri> ServersContacted { get; } = [];

    /// <summary>What <c>serve</c> would have started the server with; null until it runs.</summary>
    public ServerOptions? Served { get; private set; }

    public string[] ErrorLines => Error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);

    public Task<int> RunAsync(params string[] args)
    {
        var app = new CliApp(
            Out,
            Error,
            name => Environment.GetValueOrDefault(name),
            (server, apiKey) =>
            {
                ServersContacted.Add(server);
                var http = new HttpClient(Http, disposeHandler: false);
                if (apiKey is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
                return new ConveyorClient(http, server);
            },
            (options, _) =>
            {
                Served = options;
                return Task.FromResult(0);
            });
        return app.RunAsync(args, TestTimeout.Token);
    }
}

/// <summary>Answers every request from <see cref="Respond"/> and remembers what was sent.</summary>
internal sealed class StubHandler : HttpMessageHandler
{
    public List<(HttpMethod Method, string Path, string? Body)> Requests { get; } = [];

    public Func<HttpRequestMessage, HttpResponseMessage> Respond { get; set; } =
        _ => throw new InvalidOperationException("The test did not expect an HTTP request.");

    public static HttpResponseMessage Json(HttpStatusCode status, string json, string mediaType = "application/json") =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, mediaType) };

    public static HttpResponseMessage Problem(HttpStatusCode status, string detail) => Json(
        status,
        $$"""{"type":"about:blank","title":"{{status}}","status":{{(int)status}},"detail":"{{detail}}"}""",
        "application/problem+json");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        Requests.Add((request.Method, request.RequestUri!.PathAndQuery, body));
        return Respond(request);
    }
}

internal static class TestTimeout
{
    /// <summary>Bounds every in-process run so a hang fails the test instead of the whole run.</summary>
    public static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;
}

internal static class Jobs
{
    public const string Token = "9f2c4e1a7b";

    public static string Json(
        long id, string state = "available", string queue = "emails", bool leased = false, string result = "null") => $$"""
        {"id":{{id}},"queue":"{{queue}}","kind":"email.send","state":"{{state}}","payload":{"to":"a@b.c"},"priority":0,
         "run_at":"2026-11-23T13:45:00.123Z","attempt":{{(leased ? 1 : 0)}},"max_attempts":25,"idempotency_key":null,
         "partition_key":null,"tags":["welcome"],
         "lease":{{(leased ? $$"""{"token":"{{Token}}","owner":"w1","expires_at":"2026-11-23T13:46:00Z"}""" : "null")}},
         "progress":null,"result":{{result}},"errors":[],"trace_parent":null,
         "created_at":"2026-11-23T13:45:00.123Z","updated_at":"2026-11-23T13:45:00.123Z","started_at":null,"finished_at":null}
        """;
}
