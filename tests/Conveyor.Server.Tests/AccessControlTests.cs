using System.Net.Http.Headers;
using Conveyor.Server.Security;

namespace Conveyor.Server.Tests;

/// <summary>One server with one key per role, shared by the whole matrix.</summary>
public sealed class KeyedServerFixture : IAsyncLifetime
{
    public const string ProducerKey = "producer-key-0123456789";
    public const string ConsumerKey = "consumer-key-0123456789";
    public const string AdminKey = "admin-key-0123456789abc";
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-auth-").FullName;
    private RunningServer _server = null!;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = _directory,
            Out = null,
            ApiKeys = ApiKey.ParseList($"{ProducerKey}:producer,{ConsumerKey}:consumer,{AdminKey}:admin"),
        });
        Http = new HttpClient { BaseAddress = _server.BaseAddress };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await _server.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Every route is tried with every role, with no key and with an unknown key.</summary>
public sealed class AccessControlTests(KeyedServerFixture server) : IClassFixture<KeyedServerFixture>
{
    private const string ProducerKey = KeyedServerFixture.ProducerKey;
    private const string ConsumerKey = KeyedServerFixture.ConsumerKey;
    private const string AdminKey = KeyedServerFixture.AdminKey;
    private readonly HttpClient _http = server.Http;

    public static TheoryData<string, string, string, string> Matrix()
    {
        // method, url, body, roles allowed ("p", "c", "a")
        var routes = new (string, string, string, string)[]
        {
            ("POST", "/v1/queues/auth/jobs", "{}", "pa"),
            ("POST", "/v1/queues/auth/jobs/batch", "[{}]", "pa"),
            ("POST", "/v1/queues/auth/lease", "{}", "ca"),
            ("POST", "/v1/jobs/1/heartbeat", """{"lease_token":"x"}""", "ca"),
            ("POST", "/v1/jobs/1/complete", """{"lease_token":"x"}""", "ca"),
            ("POST", "/v1/jobs/1/fail", """{"lease_token":"x","error":"e"}""", "ca"),
            ("POST", "/v1/jobs/1/release", """{"lease_token":"x"}""", "ca"),
            ("POST", "/v1/jobs/ack", "{}", "ca"),
            ("GET", "/v1/jobs/1", "", "pca"),
            ("GET", "/v1/jobs/1/events", "", "pca"),
            ("GET", "/v1/jobs/1/result", "", "pca"),
            ("GET", "/v1/jobs", "", "pca"),
            ("GET", "/v1/queues", "", "pca"),
            ("GET", "/v1/stats", "", "pca"),
            ("GET", "/metrics", "", "pca"),
            ("GET", "/v1/jobs/socket", "", "pca"),
            ("POST", "/v1/jobs/1/cancel", "", "a"),
            ("POST", "/v1/jobs/1/retry", "", "a"),
            ("POST", "/v1/queues/auth/pause", "", "a"),
            ("POST", "/v1/queues/auth/resume", "", "a"),
            ("PUT", "/jobs/enqueue", """{"Type":"TIME_CRITICAL"}""", "pa"),
            ("POST", "/jobs/dequeue", "", "ca"),
            ("POST", "/jobs/conclude/1", "", "ca"),
            ("POST", "/jobs/cancel", """{"ID":1}""", "a"),
            ("GET", "/jobs/1", "", "pca"),
            ("GET", "/jobs/stats", "", "pca"),
        };
        var data = new TheoryData<string, string, string, string>();
        foreach (var (method, url, body, allowed) in routes)
        {
            foreach (var role in new[] { "p", "c", "a", "none", "wrong" })
                data.Add(method, url, body, role + ":" + (allowed.Contains(role, StringComparison.Ordinal) && role.Length == 1 ? "allow" : "deny"));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Every_route_admits_exactly_the_roles_that_may_use_it(string method, string url, string body, string expectation)
    {
        var (role, verdict) = (expectation.Split(':')[0], expectation.Split(':')[1]);
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        if (method != "GET") request.Content = HttpJson.Json(body);
        var key = role switch { "p" => ProducerKey, "c" => ConsumerKey, "a" => AdminKey, "wrong" => "not-a-key-0123456789", _ => null };
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await _http.SendAsync(request);
        var status = (int)response.StatusCode;
        if (verdict == "allow")
        {
            Assert.NotEqual(401, status);
            Assert.NotEqual(403, status);
        }
        else
        {
            Assert.Equal(key is null || role == "wrong" ? 401 : 403, status);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        }
    }

    [Fact]
    public async Task Health_needs_no_key()
    {
        Assert.Equal(200, (int)(await _http.GetAsync("/healthz")).StatusCode);
        Assert.Equal(200, (int)(await _http.GetAsync("/readyz")).StatusCode);
    }

    [Fact]
    public async Task A_denied_request_changes_nothing()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/queues/denied/jobs") { Content = HttpJson.Json("{}") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ConsumerKey);
        Assert.Equal(403, (int)(await _http.SendAsync(request)).StatusCode);
        using var read = new HttpRequestMessage(HttpMethod.Get, "/v1/queues");
        read.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        var body = await (await _http.SendAsync(read)).Content.ReadAsStringAsync();
        Assert.DoesNotContain("denied", body);
    }

    [Fact]
    public void Listening_beyond_loopback_without_keys_is_refused_unless_allowed()
    {
        var e = Assert.Throws<ArgumentException>(() => new ServerOptions { Host = "0.0.0.0" }.Validate());
        Assert.Contains("--allow-anonymous", e.Message);
        new ServerOptions { Host = "0.0.0.0", AllowAnonymous = true }.Validate();
        new ServerOptions { Host = "0.0.0.0", ApiKeys = ApiKey.ParseList($"{AdminKey}:admin") }.Validate();
        new ServerOptions { Host = "::1" }.Validate();
        new ServerOptions { Host = "localhost" }.Validate();
    }

    [Theory]
    [InlineData("short:admin")]
    [InlineData("long-enough-key-123456:root")]
    [InlineData("no-role-given-1234567890")]
    public void Bad_key_lists_are_refused_with_a_sentence(string list) =>
        Assert.NotEmpty(Assert.Throws<ArgumentException>(() => ApiKey.ParseList(list)).Message);
}
