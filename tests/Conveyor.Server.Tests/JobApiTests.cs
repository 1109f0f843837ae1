using System.Text;
using System.Text.Json.Nodes;

namespace Conveyor.Server.Tests;

public sealed class JobApiTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private readonly HttpClient _http = server.Http;
    private readonly string _queue = HttpJson.UniqueQueue();

    [Fact]
    public async Task Enqueue_answers_201_with_the_job_and_a_location()
    {
        using var response = await _http.PostAsync($"/v1/queues/{_queue}/jobs",
            HttpJson.Json("""{"kind":"email.send","payload":{"to":"a@b.c"},"priority":3,"tags":["x"],"max_attempts":4}"""));
        Assert.Equal(201, (int)response.StatusCode);
        var job = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal($"/v1/jobs/{(long)job["id"]!}", response.Headers.Location!.ToString());
        Assert.Equal("available", (string)job["state"]!);
        Assert.Equal("email.send", (string)job["kind"]!);
        Assert.Equal("a@b.c", (string)job["payload"]!["to"]!);
        Assert.Equal(3, (int)job["priority"]!);
        Assert.Equal(4, (int)job["max_attempts"]!);
        Assert.Equal("x", (string)job["tags"]![0]!);
        Assert.Equal(_queue, (string)job["queue"]!);
    }

    [Fact]
    public async Task Enqueue_with_a_seen_idempotency_key_answers_200_with_the_same_job()
    {
        var first = await _http.Enqueue(_queue, """{"idempotency_key":"order-1"}""");
        var (status, again, _) = await _http.Post($"/v1/queues/{_queue}/jobs", """{"idempotency_key":"order-1"}""");
        Assert.Equal(200, status);
        Assert.Equal((long)first["id"]!, (long)again!["id"]!);
        Assert.Equal(1, (int)(await _http.Counts(_queue))["available"]!);
    }

    [Fact]
    public async Task Delayed_job_is_scheduled()
    {
        var job = await _http.Enqueue(_queue, """{"delay_ms":60000}""");
        Assert.Equal("scheduled", (string)job["state"]!);
        Assert.Empty(await _http.Lease(_queue));
    }

    [Fact]
    public async Task Batch_enqueue_accepts_a_json_array()
    {
        var (status, body, _) = await _http.Post($"/v1/queues/{_queue}/jobs/batch", """[{"payload":1},{"payload":2},{"payload":3}]""");
        Assert.Equal(200, status);
        Assert.Equal(3, (int)body!["count"]!);
        var ids = body["jobs"]!.AsArray().Select(j => (long)j!["id"]!).ToList();
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(3, (int)(await _http.Counts(_queue))["available"]!);
    }

    [Fact]
    public async Task Batch_enqueue_accepts_ndjson()
    {
        var (status, body, _) = await _http.Post($"/v1/queues/{_queue}/jobs/batch", "{\"payload\":1}\n\n{\"payload\":2}\n", "application/x-ndjson");
        Assert.Equal(200, status);
        Assert.Equal(2, (int)body!["count"]!);
    }

    [Fact]
    public async Task A_batch_with_one_invalid_job_is_refused_whole()
    {
        var (status, body, type) = await _http.Post($"/v1/queues/{_queue}/jobs/batch", """[{"payload":1},{"priority":99999}]""");
        Assert.Equal(400, status);
        Assert.Equal("application/problem+json", type);
        Assert.Contains("Job 1", (string)body!["detail"]!);
        var (_, queues, _) = await _http.Get("/v1/queues");
        Assert.DoesNotContain(queues!.AsArray(), q => (string)q!["name"]! == _queue);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("""{"priority":"high"}""")]
    [InlineData("""{"unknown_field":1}""")]
    [InlineData("""{"max_attempts":0}""")]
    [InlineData("""{"run_at":"2026-01-01T00:00:00Z","delay_ms":5}""")]
    [InlineData("[]")]
    [InlineData("")]
    public async Task Invalid_enqueue_answers_400_problem_json_and_changes_nothing(string json)
    {
        var (status, body, type) = await _http.Post($"/v1/queues/{_queue}/jobs", json);
        Assert.Equal(400, status);
        Assert.Equal("application/problem+json", type);
        Assert.False(string.IsNullOrWhiteSpace((string?)body!["detail"]));
        var (_, queues, _) = await _http.Get("/v1/queues");
        Assert.DoesNotContain(queues!.AsArray(), q => (string)q!["name"]! == _queue);
    }

    [Fact]
    public async Task Invalid_queue_name_answers_400()
    {
        var (status, body, _) = await _http.Post("/v1/queues/bad%20name/jobs", "{}");
        Assert.Equal(400, status);
        Assert.Contains("queue name", (string)body!["detail"]!);
    }

    [Fact]
    public async Task A_job_larger_than_the_limit_answers_413_and_changes_nothing()
    {
        var big = $$"""{"payload":"{{new string('x', 70 * 1024)}}"}""";
        var (status, body, type) = await _http.Post($"/v1/queues/{_queue}/jobs", big);
        Assert.Equal(413, status);
        Assert.Equal("application/problem+json", type);
        Assert.Contains("limit", (string)body!["detail"]!);
        var (batchStatus, _, _) = await _http.Post($"/v1/queues/{_queue}/jobs/batch", $"[{big}]");
        Assert.Equal(413, batchStatus);
        var (tooBig, _, _) = await _http.Post($"/v1/queues/{_queue}/jobs/batch", "[" + string.Join(",", Enumerable.Repeat(big, 20)) + "]");
        Assert.Equal(413, tooBig);
        var (_, queues, _) = await _http.Get("/v1/queues");
        Assert.DoesNotContain(queues!.AsArray(), q => (string)q!["name"]! == _queue);
    }

    [Fact]
    public async Task Lease_answers_204_when_nothing_is_available()
    {
        var (status, _, _) = await _http.Post($"/v1/queues/{_queue}/lease", "{}");
        Assert.Equal(204, status);
    }

    [Theory]
    [InlineData("""{"max":0}""")]
    [InlineData("""{"max":5000}""")]
    [InlineData("""{"wait_ms":31000}""")]
    [InlineData("""{"lease_ms":10}""")]
    public async Task Lease_with_out_of_range_settings_answers_400(string json)
    {
        var (status, body, type) = await _http.Post($"/v1/queues/{_queue}/lease", json);
        Assert.Equal(400, status);
        Assert.Equal("application/problem+json", type);
        Assert.NotNull(body!["detail"]);
    }

    [Fact]
    public async Task Long_poll_lease_returns_as_soon_as_a_job_is_enqueued()
    {
        var lease = _http.Lease(_queue, waitMs: 20_000);
        await Task.Delay(50);
        var job = await _http.Enqueue(_queue);
        var leased = await lease.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal((long)job["id"]!, (long)leased.Single()!["id"]!);
    }

    [Fact]
    public async Task Full_lifecycle_lease_heartbeat_complete()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        var leased = (await _http.Lease(_queue)).Single()!;
        Assert.Equal("running", (string)leased["state"]!);
        Assert.Equal(1, (int)leased["attempt"]!);
        var token = (string)leased["lease"]!["token"]!;

        var (hb, hbJob, _) = await _http.Post($"/v1/jobs/{id}/heartbeat", $$$"""{"lease_token":"{{{token}}}","extend_ms":60000,"progress":{"pct":40}}""");
        Assert.Equal(200, hb);
        Assert.Equal(40, (int)hbJob!["progress"]!["pct"]!);

        var (done, doneJob, _) = await _http.Post($"/v1/jobs/{id}/complete", $$$"""{"lease_token":"{{{token}}}","result":{"sent":true}}""");
        Assert.Equal(200, done);
        Assert.Equal("completed", (string)doneJob!["state"]!);
        Assert.True((bool)doneJob["result"]!["sent"]!);

        var (_, events, _) = await _http.Get($"/v1/jobs/{id}/events");
        Assert.Equal(["created", "started", "completed"], events!.AsArray().Select(e => (string)e!["type"]!));
    }

    [Fact]
    public async Task Complete_with_a_stale_token_answers_409_and_changes_nothing()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        await _http.Lease(_queue);
        var (status, body, type) = await _http.Post($"/v1/jobs/{id}/complete", """{"lease_token":"stale","result":1}""");
        Assert.Equal(409, status);
        Assert.Equal("application/problem+json", type);
        Assert.Contains("lease", (string)body!["detail"]!);
        var (_, job, _) = await _http.Get($"/v1/jobs/{id}");
        Assert.Equal("running", (string)job!["state"]!);
        Assert.Null(job["result"]);
    }

    [Fact]
    public async Task Complete_without_a_token_answers_400()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        var (status, _, _) = await _http.Post($"/v1/jobs/{id}/complete", "{}");
        Assert.Equal(400, status);
    }

    [Fact]
    public async Task Unknown_job_answers_404_problem_json()
    {
        foreach (var (method, url) in new[] { (HttpMethod.Get, "/v1/jobs/9999999"), (HttpMethod.Get, "/v1/jobs/9999999/events"), (HttpMethod.Post, "/v1/jobs/9999999/cancel"), (HttpMethod.Post, "/v1/jobs/9999999/retry") })
        {
            var (status, body, type) = await _http.Send(method, url);
            Assert.Equal(404, status);
            Assert.Equal("application/problem+json", type);
            Assert.Contains("9999999", (string)body!["detail"]!);
        }
        var (complete, _, _) = await _http.Post("/v1/jobs/9999999/complete", """{"lease_token":"x"}""");
        Assert.Equal(404, complete);
    }

    [Fact]
    public async Task Fail_retries_then_dead_and_retry_brings_it_back()
    {
        var id = (long)(await _http.Enqueue(_queue, """{"max_attempts":2}"""))["id"]!;
        var token = (string)(await _http.Lease(_queue)).Single()!["lease"]!["token"]!;
        var (status, failed, _) = await _http.Post($"/v1/jobs/{id}/fail", $$"""{"lease_token":"{{token}}","error":"smtp timeout","retry_in_ms":0}""");
        Assert.Equal(200, status);
        Assert.Equal("smtp timeout", (string)failed!["errors"]![0]!["message"]!);

        var second = (await _http.Lease(_queue, waitMs: 5000)).Single()!;
        Assert.Equal(2, (int)second["attempt"]!);
        var (_, dead, _) = await _http.Post($"/v1/jobs/{id}/fail", $$"""{"lease_token":"{{(string)second["lease"]!["token"]!}}","error":"again"}""");
        Assert.Equal("dead", (string)dead!["state"]!);

        var (retried, job, _) = await _http.Post($"/v1/jobs/{id}/retry");
        Assert.Equal(200, retried);
        Assert.Equal("available", (string)job!["state"]!);
        var (again, _, _) = await _http.Post($"/v1/jobs/{id}/retry");
        Assert.Equal(409, again);
    }

    [Fact]
    public async Task Fail_without_an_error_message_answers_400()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        var token = (string)(await _http.Lease(_queue)).Single()!["lease"]!["token"]!;
        var (status, _, _) = await _http.Post($"/v1/jobs/{id}/fail", $$"""{"lease_token":"{{token}}"}""");
        Assert.Equal(400, status);
    }

    [Fact]
    public async Task Batch_ack_completes_and_fails_many_jobs_in_one_call()
    {
        for (var i = 0; i < 3; i++) await _http.Enqueue(_queue);
        var leased = await _http.Lease(_queue, max: 3);
        var c = leased.Take(2).Select(j => $$"""{"id":{{(long)j!["id"]!}},"lease_token":"{{(string)j["lease"]!["token"]!}}"}""");
        var f = leased[2]!;
        var json = $$"""{"complete":[{{string.Join(",", c)}},{"id":424242,"lease_token":"x"}],"fail":[{"id":{{(long)f["id"]!}},"lease_token":"{{(string)f["lease"]!["token"]!}}","error":"nope","dead":true}]}""";
        var (status, body, _) = await _http.Post("/v1/jobs/ack", json);
        Assert.Equal(200, status);
        Assert.Equal([200, 200, 404, 200], body!["results"]!.AsArray().Select(r => (int)r!["status"]!));
        var counts = await _http.Counts(_queue);
        Assert.Equal(2, (int)counts["completed"]!);
        Assert.Equal(1, (int)counts["dead"]!);
    }

    [Fact]
    public async Task Result_long_polls_until_the_job_finishes()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        var (notYet, pending, _) = await _http.Get($"/v1/jobs/{id}/result?wait_ms=0");
        Assert.Equal(202, notYet);
        Assert.Equal("available", (string)pending!["state"]!);
        var token = (string)(await _http.Lease(_queue)).Single()!["lease"]!["token"]!;
        var wait = _http.Get($"/v1/jobs/{id}/result?wait_ms=20000");
        Assert.Equal(200, (await _http.Post($"/v1/jobs/{id}/complete", $$$"""{"lease_token":"{{{token}}}","result":{"answer":42}}""")).Status);
        var (status, job, _) = await wait.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(200, status);
        Assert.Equal(42, (int)job!["result"]!["answer"]!);
        Assert.Equal(400, (await _http.Get($"/v1/jobs/{id}/result?wait_ms=99999")).Status);
        Assert.Equal(404, (await _http.Get("/v1/jobs/8888888/result")).Status);
    }

    [Fact]
    public async Task Release_returns_a_leased_job_to_the_queue()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        var token = (string)(await _http.Lease(_queue)).Single()!["lease"]!["token"]!;
        var (status, job, _) = await _http.Post($"/v1/jobs/{id}/release", $$"""{"lease_token":"{{token}}"}""");
        Assert.Equal(200, status);
        Assert.Equal("available", (string)job!["state"]!);
        Assert.Equal(0, (int)job["attempt"]!);
        Assert.Equal(409, (await _http.Post($"/v1/jobs/{id}/release", $$"""{"lease_token":"{{token}}"}""")).Status);
    }

    [Fact]
    public async Task Cancel_answers_200_then_409_once_finished()
    {
        var id = (long)(await _http.Enqueue(_queue))["id"]!;
        var (status, job, _) = await _http.Post($"/v1/jobs/{id}/cancel");
        Assert.Equal(200, status);
        Assert.Equal("cancelled", (string)job!["state"]!);
        var (again, body, _) = await _http.Post($"/v1/jobs/{id}/cancel");
        Assert.Equal(409, again);
        Assert.Contains("cancelled", (string)body!["detail"]!);
    }

    [Fact]
    public async Task Search_filters_and_pages_with_a_cursor()
    {
        for (var i = 0; i < 5; i++) await _http.Enqueue(_queue, $$"""{"kind":"{{(i % 2 == 0 ? "even" : "odd")}}","tags":["t{{i}}"]}""");
        var (_, page1, _) = await _http.Get($"/v1/jobs?queue={_queue}&limit=2");
        Assert.Equal(2, page1!["jobs"]!.AsArray().Count);
        var cursor = (string)page1["next_cursor"]!;
        var (_, page2, _) = await _http.Get($"/v1/jobs?queue={_queue}&limit=2&cursor={cursor}");
        Assert.True((long)page2!["jobs"]![0]!["id"]! < (long)page1["jobs"]![1]!["id"]!);
        var (_, evens, _) = await _http.Get($"/v1/jobs?queue={_queue}&kind=even&state=available");
        Assert.Equal(3, evens!["jobs"]!.AsArray().Count);
        var (_, tagged, _) = await _http.Get($"/v1/jobs?queue={_queue}&tag=t1");
        Assert.Single(tagged!["jobs"]!.AsArray());
        var (bad, _, _) = await _http.Get($"/v1/jobs?state=sleeping");
        Assert.Equal(400, bad);
        var (badCursor, _, _) = await _http.Get($"/v1/jobs?cursor=abc");
        Assert.Equal(400, badCursor);
    }

    [Fact]
    public async Task Pause_stops_leasing_and_resume_starts_it_again()
    {
        await _http.Enqueue(_queue);
        var (status, queue, _) = await _http.Post($"/v1/queues/{_queue}/pause");
        Assert.Equal(200, status);
        Assert.True((bool)queue!["paused"]!);
        Assert.Empty(await _http.Lease(_queue));
        var (_, resumed, _) = await _http.Post($"/v1/queues/{_queue}/resume");
        Assert.False((bool)resumed!["paused"]!);
        Assert.Single(await _http.Lease(_queue));
    }

    [Fact]
    public async Task Stats_report_totals_and_uptime()
    {
        await _http.Enqueue(_queue);
        var (status, stats, _) = await _http.Get("/v1/stats");
        Assert.Equal(200, status);
        Assert.True((long)stats!["uptime_ms"]! >= 0);
        Assert.True((long)stats["counts"]!["available"]! >= 1);
        Assert.True((long)stats["enqueued"]! >= 1);
    }

    [Fact]
    public async Task Eight_concurrent_http_workers_never_receive_the_same_job()
    {
        var body = "[" + string.Join(",", Enumerable.Range(0, 800).Select(i => $$$"""{"payload":{"n":{{{i}}}}}""")) + "]";
        Assert.Equal(200, (await _http.Post($"/v1/queues/{_queue}/jobs/batch", body)).Status);
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<long, bool>();
        var workers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var jobs = await _http.Lease(_queue, max: 5);
                if (jobs.Count == 0) return;
                var items = jobs.Select(j => $$"""{"id":{{(long)j!["id"]!}},"lease_token":"{{(string)j["lease"]!["token"]!}}"}""");
                foreach (var j in jobs) Assert.True(seen.TryAdd((long)j!["id"]!, true), "a job was leased twice");
                var (status, result, _) = await _http.Post("/v1/jobs/ack", $$"""{"complete":[{{string.Join(",", items)}}]}""");
                Assert.Equal(200, status);
                Assert.All(result!["results"]!.AsArray(), r => Assert.Equal(200, (int)r!["status"]!));
            }
        })).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(800, seen.Count);
        Assert.Equal(800, (int)(await _http.Counts(_queue))["completed"]!);
    }

    [Fact]
    public async Task Unknown_route_answers_404()
    {
        var response = await _http.GetAsync("/v1/nothing-here");
        Assert.Equal(404, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var problem = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(404, (int)problem["status"]!);
    }

    [Fact]
    public async Task Wrong_method_answers_405_problem_json()
    {
        var response = await _http.DeleteAsync($"/v1/queues/{_queue}/lease");
        Assert.Equal(405, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var problem = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(405, (int)problem["status"]!);
    }
}

public sealed class HealthAndTracingTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private readonly HttpClient _http = server.Http;

    [Fact]
    public async Task Healthz_and_readyz_answer_ok()
    {
        Assert.Equal("ok\n", await _http.GetStringAsync("/healthz"));
        Assert.Equal("ready\n", await _http.GetStringAsync("/readyz"));
    }

    [Fact]
    public async Task Enqueue_carries_the_callers_trace_onto_the_job_and_the_lease()
    {
        var spans = new System.Collections.Concurrent.ConcurrentBag<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == "Conveyor.Server",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) =>
                System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        var queue = HttpJson.UniqueQueue("trace");
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/queues/{queue}/jobs") { Content = HttpJson.Json("{}") };
        request.Headers.Add("traceparent", $"00-{traceId}-00f067aa0ba902b7-01");
        using var response = await _http.SendAsync(request);
        var job = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Contains(traceId, (string)job["trace_parent"]!);
        var leased = (await _http.Lease(queue)).Single()!;
        Assert.Contains(traceId, (string)leased["trace_parent"]!);
        Assert.Contains(spans, s => s.OperationName == "conveyor.enqueue" && s.TraceId.ToHexString() == traceId);
    }

    [Fact]
    public async Task A_problem_quotes_the_callers_trace()
    {
        const string traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/nothing-here");
        request.Headers.Add("traceparent", traceParent);
        using var response = await _http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, response.StatusCode);
        var problem = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Contains("4bf92f3577b34da6a3ce929d0e0e4736", (string)problem["trace_id"]!);
    }

    // In the same class as the test above, so never beside its listener (one class's tests run one at a time): with no
    // trace from the caller and nothing recording the server's spans, a job keeps no trace of its own.
    [Fact]
    public async Task Enqueue_without_a_trace_from_the_caller_stores_none_when_nothing_records()
    {
        var queue = HttpJson.UniqueQueue("untraced");
        using var response = await _http.PostAsync($"/v1/queues/{queue}/jobs", HttpJson.Json("{}"));
        var job = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        Assert.Null(job["trace_parent"]);
        var leased = (await _http.Lease(queue)).Single()!;
        Assert.Null(leased["trace_parent"]);
    }
}
