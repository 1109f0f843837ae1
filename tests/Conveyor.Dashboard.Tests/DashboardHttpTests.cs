using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Conveyor.Server.Security;

namespace Conveyor.Dashboard.Tests;

/// <summary>How the server serves the dashboard's files, and the two routes it added for it.</summary>
public sealed partial class DashboardHttpTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(
        [ApiKey.Create(BrowserFixture.AdminKey, ApiKeyRole.Admin), ApiKey.Create(BrowserFixture.ProducerKey, ApiKeyRole.Producer)],
        adminKey: BrowserFixture.AdminKey);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [GeneratedRegex("src=\"(/dashboard/assets/[0-9a-f]{12}/js/main\\.js)\"")]
    private static partial Regex MainScript();

    [Fact]
    public async Task The_page_is_served_without_a_key_revalidated_and_locked_down()
    {
        using var http = new HttpClient { BaseAddress = _server.BaseAddress };
        using var page = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        Assert.True(page.Headers.CacheControl!.NoCache);
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        var etag = page.Headers.ETag!;

        using var again = new HttpRequestMessage(HttpMethod.Get, "/");
        again.Headers.IfNoneMatch.Add(etag);
        using var notModified = await http.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Assets_live_under_a_content_version_cached_for_a_year_and_gzipped_on_request()
    {
        using var http = new HttpClient(new HttpClientHandler { AutomaticDecompression = DecompressionMethods.None }) { BaseAddress = _server.BaseAddress };
        var html = await http.GetStringAsync("/");
        var script = MainScript().Match(html).Groups[1].Value;
        Assert.NotEmpty(script);

        using var plain = await http.GetAsync(script);
        Assert.Equal("text/javascript", plain.Content.Headers.ContentType!.MediaType);
        Assert.Equal("public, max-age=31536000, immutable", plain.Headers.CacheControl!.ToString());
        Assert.Contains("import", await plain.Content.ReadAsStringAsync());

        using var request = new HttpRequestMessage(HttpMethod.Get, script);
        request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("gzip"));
        using var zipped = await http.SendAsync(request);
        Assert.Equal("gzip", zipped.Content.Headers.ContentEncoding.Single());
        Assert.True(zipped.Content.Headers.ContentLength < plain.Content.Headers.ContentLength);

        using var css = await http.GetAsync(script.Replace("js/main.js", "app.css", StringComparison.Ordinal));
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
        using var stale = await http.GetAsync("/dashboard/assets/000000000000/app.css");
        Assert.Equal(HttpStatusCode.OK, stale.StatusCode);
        Assert.True(stale.Headers.CacheControl!.NoCache); // an old page gets today's file, not cached for a year
        using var missing = await http.GetAsync(script.Replace("js/main.js", "nope.js", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Stats_history_holds_one_sample_a_second_with_what_happened_in_it()
    {
        var queue = Seed.UniqueQueue("history");
        for (var i = 0; i < 3; i++) await _server.Http.Enqueue(queue);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        JsonArray samples;
        do
        {
            // Polling a condition with a deadline: the sampler ticks once a second.
            await Task.Delay(200, deadline.Token);
            var history = await _server.Http.Send(HttpMethod.Get, "/v1/stats/history");
            Assert.Equal(1000, (int)history!["interval_ms"]!);
            Assert.Equal(900, (int)history["capacity"]!);
            samples = history["samples"]!.AsArray();
        }
        while (samples.Sum(s => (long)s!["enqueued"]!) < 3);
        Assert.Contains(samples, s => (long)s!["available"]! >= 3);
        var last = (long)samples[^1]!["at_ms"]!;
        var newer = await _server.Http.Send(HttpMethod.Get, $"/v1/stats/history?since={last}");
        Assert.All(newer!["samples"]!.AsArray(), s => Assert.True((long)s!["at_ms"]! > last));
    }

    [Fact]
    public async Task Retry_dead_revives_every_dead_job_of_the_queue_and_needs_an_admin_key()
    {
        var queue = Seed.UniqueQueue("retry-dead");
        var other = Seed.UniqueQueue("retry-dead-other");
        var dead = new List<long>();
        for (var i = 0; i < 4; i++) dead.Add(await _server.Http.DeadJob(queue));
        var untouched = await _server.Http.DeadJob(other);

        using var producer = new HttpClient { BaseAddress = _server.BaseAddress };
        producer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", BrowserFixture.ProducerKey);
        await producer.Send(HttpMethod.Post, $"/v1/queues/{queue}/retry-dead", expect: 403);
        Assert.Equal("dead", await _server.Http.State(dead[0]));

        var answer = await _server.Http.Send(HttpMethod.Post, $"/v1/queues/{queue}/retry-dead");
        Assert.Equal(4, (long)answer!["retried"]!);
        foreach (var id in dead) Assert.Equal("available", await _server.Http.State(id));
        Assert.Equal("dead", await _server.Http.State(untouched));
        Assert.Equal(0, (long)(await _server.Http.Send(HttpMethod.Post, $"/v1/queues/{queue}/retry-dead"))!["retried"]!);
        await _server.Http.Send(HttpMethod.Post, "/v1/queues/bad%20name!/retry-dead", expect: 400);
    }
}
