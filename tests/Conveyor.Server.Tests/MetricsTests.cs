namespace Conveyor.Server.Tests;

public sealed class MetricsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private readonly HttpClient _http = server.Http;

    private async Task<IReadOnlyList<PrometheusText.Sample>> Scrape()
    {
        using var response = await _http.GetAsync("/metrics");
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains(response.Content.Headers.ContentType.Parameters, p => p.Name == "version" && p.Value == "0.0.4");
        return PrometheusText.Parse(await response.Content.ReadAsStringAsync()).Samples;
    }

    private static double Value(IReadOnlyList<PrometheusText.Sample> samples, string name, params (string Key, string Value)[] labels) =>
        samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).Sum(s => s.Value);

    [Fact]
    public async Task Metrics_parse_strictly_and_move_as_jobs_flow()
    {
        var queue = HttpJson.UniqueQueue("metrics\"q");
        queue = queue.Replace("\"", "", StringComparison.Ordinal);
        var before = await Scrape();
        for (var i = 0; i < 3; i++) await _http.Enqueue(queue, """{"kind":"mail.send"}""");
        var leased = await _http.Lease(queue, max: 3);
        var token0 = (string)leased[0]!["lease"]!["token"]!;
        var token1 = (string)leased[1]!["lease"]!["token"]!;
        await _http.Post($"/v1/jobs/{(long)leased[0]!["id"]!}/complete", $$"""{"lease_token":"{{token0}}"}""");
        await _http.Post($"/v1/jobs/{(long)leased[1]!["id"]!}/fail", $$"""{"lease_token":"{{token1}}","error":"x","dead":true}""");

        var after = await Scrape();
        var labels = new[] { ("queue", queue), ("kind", "mail.send") };
        Assert.Equal(3, Value(after, "conveyor_jobs_enqueued_total", labels) - Value(before, "conveyor_jobs_enqueued_total", labels));
        Assert.Equal(1, Value(after, "conveyor_jobs_completed_total", labels));
        Assert.Equal(1, Value(after, "conveyor_jobs_failed_total", labels));
        Assert.Equal(1, Value(after, "conveyor_jobs_dead_total", labels));
        Assert.Equal(3, Value(after, "conveyor_job_wait_duration_seconds_count", labels));
        Assert.Equal(2, Value(after, "conveyor_job_run_duration_seconds_count", labels));
        Assert.Equal(1, Value(after, "conveyor_queue_jobs", ("queue", queue), ("state", "running")));
        Assert.Equal(1, Value(after, "conveyor_queue_jobs", ("queue", queue), ("state", "completed")));
        Assert.Equal(1, Value(after, "conveyor_queue_jobs", ("queue", queue), ("state", "dead")));
        Assert.True(Value(after, "conveyor_store_commit_batch_size_count") > Value(before, "conveyor_store_commit_batch_size_count"));
        Assert.True(Value(after, "conveyor_store_commit_duration_seconds_count") > 0);
        Assert.True(Value(after, "http_server_request_duration_seconds_count", ("http_route", "/v1/queues/{queue}/jobs"), ("http_response_status_code", "201")) >= 3);
    }

    [Fact]
    public void Label_values_are_escaped()
    {
        var text = new System.Text.StringBuilder();
        Conveyor.Server.Metrics.PrometheusExporter.AppendLabelValue(text, "a\\b\"c\nd");
        Assert.Equal("a\\\\b\\\"c\\nd", text.ToString());
        var parsed = PrometheusText.Parse($"# TYPE m gauge\nm{{l=\"{text}\"}} 1\n");
        Assert.Equal("a\\b\"c\nd", parsed.Samples.Single().Labels["l"]);
    }
}
