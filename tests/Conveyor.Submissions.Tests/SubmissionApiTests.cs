using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Submissions.Tests;

/// <summary>The HTTP and WebSocket contract of docs/submissions.md against a real server, on each store.</summary>
public abstract class SubmissionApiTests : IAsyncLifetime
{
    protected abstract bool Postgres { get; }

    protected SubmissionServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await SubmissionServer.StartAsync(Postgres);

    public async Task DisposeAsync() => await Server.DisposeAsync();

    private async Task<JsonNode> Submit(string body, string type = "application/json")
    {
        var (status, created) = await Server.Post("/v1/submissions", body, type);
        Assert.True(status == 201, $"submit answered {status}: {created.Compact()}");
        return created!;
    }

    [Fact]
    public async Task A_json_submission_is_processed_and_its_results_stream_back_in_chunk_order()
    {
        var queue = SubmissionServer.UniqueQueue();
        var created = await Submit($$"""
            {"queue":"{{queue}}","chunk_size":1000,"metadata":{"source":"test"},"labels":{"company_id":42},
             "chunks":[{"data":{"ops":[1,2]} },{"data_base64":"AAEC"},{"data":[3]},{}] }
            """);
        Assert.Equal("in_progress", created["state"].Text());
        Assert.Equal(4, created["chunks_total"].Long());
        var id = created["id"].Long();
        Assert.Equal(409, (await Server.Results(id)).Status);

        var chunks = await Server.Reserve(queue, 10);
        Assert.Equal(4, chunks.Count);
        Assert.Equal("""{"ops":[1,2]}""", chunks[0]!["data"].Compact());
        Assert.Equal("AAEC", chunks[1]!["data_base64"].Text());
        Assert.Equal(42, chunks[0]!["labels"]!["company_id"].Long());
        foreach (var chunk in chunks.Reverse()) Assert.Equal(200, (await Server.Complete(chunk!, $$"""{"i":{{chunk!["index"]}}}""")).Status);

        var (status, partialLines) = await Server.Results(id, partial: true);
        Assert.Equal(200, status);
        var (_, lines) = await Server.Results(id);
        Assert.Equal([0L, 1L, 2L, 3L], lines.Select(l => l["index"].Long()));
        Assert.Equal("""{"i":2}""", lines[2]["result"].Compact());
        Assert.Equal(4, partialLines.Count);
        var done = await Server.Submission(id);
        Assert.Equal("completed", done["state"].Text());
        Assert.Equal(4000, done["operations_done"].Long());
        Assert.Equal("""{"source":"test"}""", done["metadata"].Compact());
        Assert.NotNull(done["finished_at"]);
    }

    [Fact]
    public async Task The_openapi_shapes_match_real_answers()
    {
        static string[] Fields(Type type) =>
            [.. type.GetProperties().Select(p => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name)).Order()];
        var queue = SubmissionServer.UniqueQueue();
        var created = await Submit($$"""{"queue":"{{queue}}","chunks_ref":{"prefix":"{{queue}}","count":1} }""");
        Assert.Equal(Fields(typeof(Conveyor.Server.Submissions.SubmissionResponse)), created.AsObject().Select(p => p.Key).Order());
        var chunk = (await Server.Reserve(queue))[0]!.AsObject();
        var optional = new[] { "data", "data_base64" }; // a chunk carries one body field: here body_ref
        Assert.Equal(Fields(typeof(Conveyor.Server.Submissions.ReservedChunkResponse)).Except(optional), chunk.Select(p => p.Key).Order());
    }

    [Fact]
    public async Task A_submission_without_chunks_is_completed_at_once()
    {
        var created = await Submit($$"""{"queue":"{{SubmissionServer.UniqueQueue()}}","chunks":[]}""");
        Assert.Equal("completed", created["state"].Text());
        var (status, lines) = await Server.Results(created["id"].Long());
        Assert.Equal(200, status);
        Assert.Empty(lines);
    }

    [Fact]
    public async Task An_ndjson_submission_streams_in_and_a_bad_line_changes_nothing()
    {
        var queue = SubmissionServer.UniqueQueue();
        var ndjson = new StringBuilder($$"""{"queue":"{{queue}}","chunk_size":10}""").Append('\n');
        for (var i = 0; i < 3_000; i++) ndjson.Append($$"""{"data":{"n":{{i}} } }""").Append('\n');
        var created = await Submit(ndjson.ToString(), "application/x-ndjson");
        Assert.Equal(3_000, created["chunks_total"].Long());
        var chunk = Assert.Single(await Server.Reserve(queue));
        Assert.Equal("""{"n":0}""", chunk!["data"].Compact());

        var other = SubmissionServer.UniqueQueue();
        var (status, problem) = await Server.Post("/v1/submissions", $$"""
            {"queue":"{{other}}"}
            {"data":1}
            {"data":2, "typo":3}
            """, "application/x-ndjson");
        Assert.Equal(400, status);
        Assert.Contains("Line 3", problem!["detail"].Text());
        var (_, found) = await Server.Get($"/v1/submissions?queue={other}");
        Assert.Empty(found!["submissions"]!.AsArray());
    }

    [Theory]
    [InlineData("""{"queue":"q","chunks":[{"data":1,"data_base64":"AA=="}]}""", "both")]
    [InlineData("""{"queue":"q","chunks":[],"unknown":1}""", "unknown")]
    [InlineData("""{"queue":"q","labels":{"company_id":"acme"}}""", "labels")]
    [InlineData("""{"queue":"q","chunks_ref":{"prefix":"../etc","count":1}}""", "prefix")]
    [InlineData("""{"chunks":[]}""", "queue is required")]
    [InlineData("""{"queue":"q","chunks":[],"max_chunk_retries":-1}""", "max_chunk_retries")]
    public async Task Bad_submissions_are_refused_with_a_problem(string body, string mentions)
    {
        var (status, problem) = await Server.Post("/v1/submissions", body);
        Assert.Equal(400, status);
        Assert.Contains(mentions, problem!["detail"].Text(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_chunk_failing_past_its_retries_fails_the_submission_and_skips_the_rest()
    {
        var queue = SubmissionServer.UniqueQueue();
        var id = (await Submit($$"""{"queue":"{{queue}}","max_chunk_retries":1,"chunks":[{"data":0},{"data":1},{"data":2}]}"""))["id"].Long();
        string Fail(JsonNode c) => $$"""{"submission_id":{{id}},"index":{{c["index"]}},"lease_token":"{{c["lease_token"]}}","error":"bad input"}""";
        var first = (await Server.Reserve(queue))[0]!;
        var (_, retry) = await Server.Post("/v1/chunks/fail", Fail(first));
        Assert.Equal("retry", retry!["outcome"].Text());
        var second = (await Server.Reserve(queue))[0]!;
        Assert.Equal(2, second["attempt"].Long());
        var (_, failed) = await Server.Post("/v1/chunks/fail", Fail(second));
        Assert.Equal("submission_failed", failed!["outcome"].Text());
        var submission = await Server.Submission(id);
        Assert.Equal("failed", submission["state"].Text());
        Assert.Equal(0, submission["failed_chunk"]!["index"].Long());
        Assert.Equal("bad input", submission["failed_chunk"]!["error"].Text());
        Assert.Empty(await Server.Reserve(queue, 10));
        Assert.Equal(409, (await Server.Results(id)).Status);
    }

    [Fact]
    public async Task Completing_twice_is_a_no_op_and_a_stale_token_is_refused()
    {
        var queue = SubmissionServer.UniqueQueue();
        var id = (await Submit($$"""{"queue":"{{queue}}","chunks":[{"data":0},{"data":1}]}"""))["id"].Long();
        var chunk = (await Server.Reserve(queue))[0]!;
        Assert.Equal("completed", (await Server.Complete(chunk, "1")).Body!["outcome"].Text());
        var (status, again) = await Server.Complete(chunk, "2");
        Assert.Equal(200, status);
        Assert.Equal("already_finished", again!["outcome"].Text());
        Assert.Equal(1, (await Server.Submission(id))["chunks_done"].Long());
        var (stale, _) = await Server.Post("/v1/chunks/complete", $$"""{"submission_id":{{id}},"index":1,"lease_token":"nope"}""");
        Assert.Equal(409, stale);
    }

    [Fact]
    public async Task Cancel_answers_409_naming_the_state_once_the_submission_is_finished()
    {
        var queue = SubmissionServer.UniqueQueue();
        var id = (await Submit($$"""{"queue":"{{queue}}","chunks":[{"data":0}]}"""))["id"].Long();
        var (status, cancelled) = await Server.Post($"/v1/submissions/{id}/cancel");
        Assert.Equal(200, status);
        Assert.Equal("cancelled", cancelled!["state"].Text());
        Assert.Empty(await Server.Reserve(queue));
        var (again, problem) = await Server.Post($"/v1/submissions/{id}/cancel");
        Assert.Equal(409, again);
        Assert.Contains("already cancelled", problem!["detail"].Text());
        Assert.Equal("cancelled", problem!["state"].Text());
        Assert.Equal(404, (await Server.Post("/v1/submissions/999999/cancel")).Status);
    }

    [Fact]
    public async Task Submissions_are_found_by_label_state_prefix_and_queue()
    {
        var queue = SubmissionServer.UniqueQueue();
        var a = (await Submit($$"""{"queue":"{{queue}}","labels":{"company_id":42},"chunks":[{"data":0}]}"""))["id"].Long();
        var b = (await Submit($$"""{"queue":"{{queue}}","labels":{"company_id":42},"chunks":[]}"""))["id"].Long();
        var c = (await Submit($$"""{"queue":"{{queue}}","labels":{"company_id":7},"chunks_ref":{"prefix":"{{queue}}/in","count":0} }"""))["id"].Long();
        async Task<long[]> Find(string query)
        {
            var (status, body) = await Server.Get($"/v1/submissions?{query}");
            Assert.Equal(200, status);
            return [.. body!["submissions"]!.AsArray().Select(s => s!["id"].Long())];
        }
        Assert.Equal([b, a], await Find($"label.company_id=42&queue={queue}"));
        Assert.Equal([a], await Find($"label.company_id=42&state=in_progress&queue={queue}"));
        Assert.Equal([c], await Find($"prefix={queue}/in"));
        Assert.Equal([c, b, a], await Find($"queue={queue}"));
        Assert.Equal([b, a], await Find($"queue={queue}&cursor={c}"));
        Assert.Equal(400, (await Server.Get("/v1/submissions?label.company_id=acme")).Status);
        Assert.Equal(400, (await Server.Get("/v1/submissions?state=done")).Status);
    }

    [Fact]
    public async Task Reservation_strategies_are_chosen_per_request()
    {
        var queue = SubmissionServer.UniqueQueue();
        for (var company = 1; company <= 3; company++)
        {
            for (var n = 0; n < (company == 1 ? 3 : 1); n++) await Submit($$"""{"queue":"{{queue}}","labels":{"company_id":{{company}}},"chunks":[{},{},{}]}""");
        }
        var distinct = await Server.Reserve(queue, 3, ",\"prefer_distinct\":\"company_id\"");
        Assert.Equal([1L, 2L, 3L], distinct.Select(c => c!["labels"]!["company_id"].Long()).Order());
        var newest = await Server.Reserve(queue, 1, ",\"strategy\":\"newest\"");
        Assert.Equal(3, newest[0]!["labels"]!["company_id"].Long());
        var random = await Server.Reserve(queue, 1, ",\"strategy\":\"random\"");
        Assert.Single(random);
        var (status, problem) = await Server.Post("/v1/chunks/reserve", $$"""{"queue":"{{queue}}","strategy":"fastest"}""");
        Assert.Equal(400, status);
        Assert.Contains("oldest, newest, random", problem!["detail"].Text());
    }

    [Fact]
    public async Task A_long_poll_reservation_wakes_when_a_submission_arrives()
    {
        var queue = SubmissionServer.UniqueQueue();
        var waiting = Server.Post("/v1/chunks/reserve", $$"""{"queue":"{{queue}}","wait_ms":30000}""");
        await Submit($$"""{"queue":"{{queue}}","chunks":[{"data":"x"}]}""");
        var (status, body) = await waiting;
        Assert.Equal(200, status);
        Assert.Equal("x", body!["chunks"]![0]!["data"].Text());
    }

    [Fact]
    public async Task A_websocket_consumer_reserves_and_completes_chunks_and_answers_pings()
    {
        var queue = SubmissionServer.UniqueQueue();
        var id = (await Submit($$"""{"queue":"{{queue}}","chunks":[{"data":1},{"data":2}]}"""))["id"].Long();
        using var consumer = await Server.ConnectAsync();
        var pong = await consumer.RequestAsync("""{"type":"ping","id":7}""");
        Assert.Equal("pong", pong["type"].Text());
        Assert.Equal(7, pong["id"].Long());
        var reserved = await consumer.RequestAsync($$"""{"type":"reserve","id":"r1","queue":"{{queue}}","max":2}""");
        Assert.Equal("chunks", reserved["type"].Text());
        Assert.Equal("r1", reserved["id"].Text());
        foreach (var chunk in reserved["chunks"]!.AsArray())
        {
            var ack = await consumer.RequestAsync($$"""
                {"type":"complete","id":{{chunk!["index"]}},"submission_id":{{id}},"index":{{chunk["index"]}},"lease_token":"{{chunk["lease_token"]}}","result":{"ok":true} }
                """);
            Assert.Equal("ack", ack["type"].Text());
            Assert.Equal("completed", ack["outcome"].Text());
        }
        Assert.Equal("completed", (await Server.Submission(id))["state"].Text());
        var error = await consumer.RequestAsync("""{"type":"reserve","id":3}""");
        Assert.Equal("error", error["type"].Text());
        Assert.Equal(400, error["status"].Long());
    }

    [Fact]
    public async Task The_server_pings_a_websocket_consumer()
    {
        using var consumer = await Server.ConnectAsync("heartbeat_ms=100");
        var ping = await consumer.ReceiveAsync(skipPings: false);
        Assert.Equal("ping", ping["type"].Text());
    }

    [Fact]
    public async Task Dropping_a_websocket_releases_its_reservations_at_once_without_counting_an_attempt()
    {
        var queue = SubmissionServer.UniqueQueue();
        var id = (await Submit($$"""{"queue":"{{queue}}","max_chunk_retries":0,"chunks":[{"data":1},{"data":2},{"data":3}]}"""))["id"].Long();
        var consumer = await Server.ConnectAsync();
        var reserved = await consumer.RequestAsync($$"""{"type":"reserve","id":1,"queue":"{{queue}}","max":3,"lease_ms":600000}""");
        Assert.Equal(3, reserved["chunks"]!.AsArray().Count);
        Assert.Equal(3, (await Server.Submission(id))["chunks_reserved"].Long());

        consumer.Socket.Abort(); // no close handshake: the network went away
        consumer.Dispose();
        await SubmissionServer.Eventually(async () => (await Server.Submission(id))["chunks_ready"].Long() == 3, "the dropped connection's chunks to be ready again");

        // With max_chunk_retries 0 a counted attempt would have failed the submission; instead the chunks start over.
        var again = await Server.Reserve(queue, 3);
        Assert.Equal([1L, 1L, 1L], again.Select(c => c!["attempt"].Long()));
        Assert.Equal("in_progress", (await Server.Submission(id))["state"].Text());
    }

    [Fact]
    public async Task A_consumer_silent_for_three_heartbeats_is_dropped_and_its_chunks_released()
    {
        var queue = SubmissionServer.UniqueQueue();
        var id = (await Submit($$"""{"queue":"{{queue}}","chunks":[{"data":1}]}"""))["id"].Long();
        using var consumer = await Server.ConnectAsync("heartbeat_ms=100");
        var reserved = await consumer.RequestAsync($$"""{"type":"reserve","id":1,"queue":"{{queue}}","lease_ms":600000}""");
        Assert.Single(reserved["chunks"]!.AsArray());
        // From now on the client sends nothing (not even pongs): after three intervals the server ends the connection.
        await SubmissionServer.Eventually(async () => (await Server.Submission(id))["chunks_ready"].Long() == 1, "the silent consumer's chunk to be released");
        Assert.Equal(1, Assert.Single(await Server.Reserve(queue))!["attempt"].Long());
    }

    [Fact]
    public async Task Object_store_bodies_are_referenced_by_key_and_outputs_land_beside_the_inputs()
    {
        var queue = SubmissionServer.UniqueQueue();
        var prefix = $"{queue}/batch-1";
        for (var i = 0; i < 2; i++)
        {
            using var put = await Server.Http.PutAsync($"/v1/objects/{prefix}/{i}-in.bin", new ByteArrayContent([(byte)i, 9, 9]));
            Assert.Equal(204, (int)put.StatusCode);
        }
        var id = (await Submit($$"""{"queue":"{{queue}}","chunks_ref":{"prefix":"{{prefix}}","count":2} }"""))["id"].Long();
        var chunks = await Server.Reserve(queue, 2);
        Assert.Equal("fs", chunks[0]!["body_ref"]!["store"].Text());
        Assert.Equal($"{prefix}/1-in.bin", chunks[1]!["body_ref"]!["key"].Text());
        Assert.Equal($"{prefix}/1-out.bin", chunks[1]!["output_ref"]!["key"].Text());
        Assert.Equal(new byte[] { 1, 9, 9 }, await Server.Http.GetByteArrayAsync($"/v1/objects/{prefix}/1-in.bin"));

        // One output inline (the server writes it to the store), one written by the consumer itself.
        var (status, _) = await Server.Post("/v1/chunks/complete",
            $$"""{"submission_id":{{id}},"index":0,"lease_token":"{{chunks[0]!["lease_token"]}}","result_base64":"AQID"}""");
        Assert.Equal(200, status);
        using (var put = await Server.Http.PutAsync($"/v1/objects/{prefix}/1-out.bin", new ByteArrayContent([4, 5])))
            Assert.Equal(204, (int)put.StatusCode);
        Assert.Equal(200, (await Server.Complete(chunks[1]!)).Status);

        Assert.Equal(new byte[] { 1, 2, 3 }, await File.ReadAllBytesAsync(Path.Combine(Server.Directory, "objects", queue, "batch-1", "0-out.bin")));
        var (_, lines) = await Server.Results(id);
        Assert.Equal([$"{prefix}/0-out.bin", $"{prefix}/1-out.bin"], lines.Select(l => l["result_ref"]!["key"].Text()));
        Assert.Equal(new byte[] { 4, 5 }, await Server.Http.GetByteArrayAsync($"/v1/objects/{prefix}/1-out.bin"));
        Assert.Equal(404, (await Server.Get($"/v1/objects/{prefix}/7-in.bin")).Status);
        Assert.Equal(400, (await Server.Get("/v1/objects/a/b%20c")).Status);
    }

    [Fact]
    public async Task A_finished_submission_enqueues_its_callback_job()
    {
        var queue = SubmissionServer.UniqueQueue();
        var callbacks = SubmissionServer.UniqueQueue("cb");
        var id = (await Submit($$"""
            {"queue":"{{queue}}","chunks":[{"data":1}],"on_complete":{"queue":"{{callbacks}}","kind":"report","payload":{"to":"ops"} } }
            """))["id"].Long();
        Assert.Equal(200, (await Server.Complete((await Server.Reserve(queue))[0]!)).Status);
        var (status, jobs) = await Server.Post($"/v1/queues/{callbacks}/lease", """{"max":1,"wait_ms":20000,"lease_ms":60000}""");
        Assert.Equal(200, status);
        var job = jobs!.AsArray().Single()!;
        Assert.Equal("report", job["kind"].Text());
        Assert.Equal(id, job["payload"]!["submission"]!["id"].Long());
        Assert.Equal("completed", job["payload"]!["submission"]!["state"].Text());
        Assert.Equal("ops", job["payload"]!["payload"]!["to"].Text());
        Assert.Equal($"submission-{id}", job["idempotency_key"].Text());
    }

    [Fact]
    public async Task A_submission_failed_by_an_expired_lease_enqueues_its_callback_job()
    {
        // On SQLite the reaper sleeps up to a minute with nothing reserved: the reservation must wake it, and the
        // reaper failing the last attempt must wake the callback dispatcher as a failure over HTTP does.
        var queue = SubmissionServer.UniqueQueue();
        var callbacks = SubmissionServer.UniqueQueue("cb");
        var id = (await Submit($$"""
            {"queue":"{{queue}}","max_chunk_retries":0,"chunks":[{"data":1}],"on_complete":{"queue":"{{callbacks}}","kind":"report"} }
            """))["id"].Long();
        var (reserved, chunks) = await Server.Post("/v1/chunks/reserve", $$"""{"queue":"{{queue}}","lease_ms":1000}""");
        Assert.Equal(200, reserved);
        Assert.Single(chunks!["chunks"]!.AsArray());
        var (status, jobs) = await Server.Post($"/v1/queues/{callbacks}/lease", """{"max":1,"wait_ms":20000,"lease_ms":60000}""");
        Assert.Equal(200, status);
        var job = jobs!.AsArray().Single()!;
        Assert.Equal(id, job["payload"]!["submission"]!["id"].Long());
        Assert.Equal("failed", job["payload"]!["submission"]!["state"].Text());
    }

    [Fact]
    public async Task A_heartbeat_that_shortens_a_lease_is_reaped_at_the_new_expiry()
    {
        // On SQLite the reaper plans its next look at the earliest expiry it knows: a shorter lease must wake it.
        var queue = SubmissionServer.UniqueQueue();
        var callbacks = SubmissionServer.UniqueQueue("cb");
        await Submit($$"""
            {"queue":"{{queue}}","max_chunk_retries":0,"chunks":[{"data":1}],"on_complete":{"queue":"{{callbacks}}","kind":"report"} }
            """);
        var chunk = (await Server.Reserve(queue)).Single()!; // a 60 s lease
        var (beat, _) = await Server.Post("/v1/chunks/heartbeat",
            $$"""{"submission_id":{{chunk["submission_id"].Long()}},"index":{{chunk["index"].Long()}},"lease_token":"{{chunk["lease_token"].Text()}}","extend_ms":1000}""");
        Assert.Equal(200, beat);
        var (status, jobs) = await Server.Post($"/v1/queues/{callbacks}/lease", """{"max":1,"wait_ms":20000,"lease_ms":60000}""");
        Assert.Equal(200, status);
        Assert.Equal("failed", jobs!.AsArray().Single()!["payload"]!["submission"]!["state"].Text());
    }

    [Fact]
    public async Task A_callback_with_a_destination_is_delivered_as_a_webhook()
    {
        var received = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var hook = WebApplication.CreateSlimBuilder();
        hook.WebHost.UseUrls("http://127.0.0.1:0");
        await using var receiver = hook.Build();
        receiver.MapPost("/hooks/done", async (HttpRequest request) =>
        {
            using var reader = new StreamReader(request.Body);
            await received.Writer.WriteAsync(await reader.ReadToEndAsync());
            return Results.Ok();
        });
        await receiver.StartAsync();
        var url = receiver.Urls.First() + "/hooks/done";

        var queue = SubmissionServer.UniqueQueue();
        var callbacks = SubmissionServer.UniqueQueue("hook");
        var id = (await Submit($$"""
            {"queue":"{{queue}}","chunks":[{"data":1}],
             "on_complete":{"queue":"{{callbacks}}","kind":"done","destination":{"type":"http","url":"{{url}}"} } }
            """))["id"].Long();
        Assert.Equal(200, (await Server.Complete((await Server.Reserve(queue))[0]!)).Status);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var delivered = JsonNode.Parse(await received.Reader.ReadAsync(timeout.Token))!;
        Assert.Equal(id, delivered["submission"]!["id"].Long());
        Assert.Equal("completed", delivered["submission"]!["state"].Text());
        await receiver.StopAsync();
    }
}

public sealed class SqliteSubmissionApiTests : SubmissionApiTests
{
    protected override bool Postgres => false;
}

public sealed class PostgresSubmissionApiTests : SubmissionApiTests
{
    protected override bool Postgres => true;
}
