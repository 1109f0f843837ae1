using System.Net;
using System.Text.Json;

namespace Conveyor.Cli.Tests;

public sealed class ClientCommandTests
{
    [Fact]
    public async Task Enqueue_sends_only_the_given_fields_in_snake_case()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.Created, Jobs.Json(42));

        var exit = await cli.RunAsync(
            "enqueue", "emails", "--kind", "email.send", "--payload", """{"to":"a@b.c"}""",
            "--priority", "5",
            "--max-attempts", "3", "--idempotency-key", "k1", "--tag", "welcome", "--tag", "vip");

        Assert.Equal(0, exit);
        var (method, path, body) = Assert.Single(cli.Http.Requests);
        Assert.Equal(HttpMethod.Post, method);
        Assert.Equal("/v1/queues/emails/jobs", path);
        using var sent = JsonDocument.Parse(body!);
        Assert.Equal(
            """{"kind":"email.send","payload":{"to":"a@b.c"},"priority":5,"""
            + "\"max_attempts\":3,\"idempotency_key\":\"k1\",\"tags\":[\"welcome\",\"vip\"]}",
            sent.RootElement.GetRawText());
        Assert.Equal("enqueued job 42 in 'emails' (available)\n", cli.Out.ToString());
    }

    [Fact]
    public async Task Enqueue_with_webhooks_sends_http_destinations()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.Created, Jobs.Json(42));

        Assert.Equal(0, await cli.RunAsync("enqueue", "hooks", "--webhook", "https://a.example/hook", "--webhook", "http://b.example/x"));

        using var sent = JsonDocument.Parse(Assert.Single(cli.Http.Requests).Body!);
        Assert.Equal(
            """{"destinations":[{"type":"http","url":"https://a.example/hook","method":"POST"},{"type":"http","url":"http://b.example/x","method":"POST"}]}""",
            sent.RootElement.GetRawText());
    }

    [Fact]
    public async Task Enqueue_reports_an_idempotent_replay_differently_from_a_new_job()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, Jobs.Json(42, state: "running"));

        Assert.Equal(0, await cli.RunAsync("enqueue", "emails", "--idempotency-key", "k1"));

        Assert.Equal("job 42 already exists in 'emails' with this idempotency key (running)\n", cli.Out.ToString());
    }

    [Fact]
    public async Task Invalid_payload_json_is_a_usage_error_and_nothing_is_sent()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("enqueue", "emails", "--payload", "{to: 1}"));

        Assert.Empty(cli.Http.Requests);
        var line = Assert.Single(cli.ErrorLines);
        Assert.StartsWith("error: --payload is not valid JSON at character 2:", line);
        Assert.EndsWith("See 'conveyor enqueue --help'.", line);
    }

    [Fact]
    public async Task Delay_and_run_at_together_are_refused()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("enqueue", "emails", "--delay-ms", "10", "--run-at", "2026-01-01T00:00:00Z"));

        Assert.Empty(cli.Http.Requests);
        Assert.Contains("Give either --delay-ms or --run-at, not both.", Assert.Single(cli.ErrorLines));
    }

    [Fact]
    public async Task Unknown_job_prints_the_servers_detail_on_one_line_and_exits_1()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Problem(HttpStatusCode.NotFound, "Job 99 was not found.");

        Assert.Equal(1, await cli.RunAsync("get", "99"));

        Assert.Equal("/v1/jobs/99", Assert.Single(cli.Http.Requests).Path);
        Assert.Equal(["error: Job 99 was not found."], cli.ErrorLines);
        Assert.Empty(cli.Out.ToString());
    }

    [Fact]
    public async Task An_error_without_problem_details_still_names_the_status()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ =>
            new HttpResponseMessage(HttpStatusCode.BadGateway) { Content = new StringContent("upstream\nbroken") };

        Assert.Equal(1, await cli.RunAsync("stats"));

        Assert.Equal(["error: the server answered 502 Bad Gateway: upstream broken"], cli.ErrorLines);
    }

    [Fact]
    public async Task An_unreachable_server_exits_3_with_one_line_naming_the_address()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ =>
            throw new HttpRequestException("Connection refused (127.0.0.1:5999)", new IOException("Connection refused"));

        Assert.Equal(3, await cli.RunAsync("queues", "--server", "http://127.0.0.1:5999"));

        var line = Assert.Single(cli.ErrorLines);
        Assert.Equal(
            "error: could not reach the Conveyor server at http://127.0.0.1:5999/ (Connection refused); "
            + "check that it is running and the address is right",
            line);
    }

    [Fact]
    public async Task Server_comes_from_the_option_then_the_environment_then_the_default()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, "[]");

        await cli.RunAsync("queues");
        cli.Environment["CONVEYOR_SERVER"] = "http://queue.internal:9000";
        await cli.RunAsync("queues");
        await cli.RunAsync("queues", "--server", "https://other:1234/prefix");

        Assert.Equal(
            ["http://127.0.0.1:5080/", "http://queue.internal:9000/", "https://other:1234/prefix"],
            cli.ServersContacted.Select(u => u.ToString()));
        Assert.Equal("/prefix/v1/queues", cli.Http.Requests[2].Path);
    }

    [Fact]
    public async Task Lease_with_nothing_available_says_so_and_succeeds()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => new HttpResponseMessage(HttpStatusCode.NoContent);

        Assert.Equal(0, await cli.RunAsync("lease", "emails", "--wait-ms", "100", "--worker", "w1"));

        var (_, path, body) = Assert.Single(cli.Http.Requests);
        Assert.Equal("/v1/queues/emails/lease", path);
        Assert.Equal("""{"max":1,"lease_ms":30000,"wait_ms":100,"worker":"w1"}""", body);
        Assert.Equal("no job available in 'emails'\n", cli.Out.ToString());
    }

    [Fact]
    public async Task Lease_prints_an_aligned_table_with_the_whole_token()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, $"[{Jobs.Json(7, "running", leased: true)}]");

        Assert.Equal(0, await cli.RunAsync("lease", "emails"));

        Assert.Equal(
            """
            ID  KIND        ATTEMPT  TOKEN       EXPIRES               PAYLOAD
            7   email.send  1/25     9f2c4e1a7b  2026-11-23 13:46:00Z  {"to":"a@b.c"}

            """.ReplaceLineEndings("\n"),
            cli.Out.ToString());
    }

    [Fact]
    public async Task Complete_sends_the_token_and_result_and_json_output_is_the_api_shape()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, Jobs.Json(7, "completed", result: """{"sent":true}"""));

        Assert.Equal(0, await cli.RunAsync("complete", "7", "--token", Jobs.Token, "--result", """{"sent":true}""", "--json"));

        var (_, path, body) = Assert.Single(cli.Http.Requests);
        Assert.Equal("/v1/jobs/7/complete", path);
        Assert.Equal($$$"""{"lease_token":"{{{Jobs.Token}}}","result":{"sent":true}}""", body);
        using var printed = JsonDocument.Parse(cli.Out.ToString());
        Assert.Equal("completed", printed.RootElement.GetProperty("state").GetString());
        Assert.Equal(25, printed.RootElement.GetProperty("max_attempts").GetInt32());
        Assert.True(printed.RootElement.GetProperty("result").GetProperty("sent").GetBoolean());
        Assert.Equal(JsonValueKind.Null, printed.RootElement.GetProperty("lease").ValueKind);
    }

    [Fact]
    public async Task Fail_sends_dead_only_when_asked()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, Jobs.Json(7, "dead"));

        Assert.Equal(0, await cli.RunAsync("fail", "7", "--token", "t", "--error", "smtp timeout", "--dead"));
        Assert.Equal(0, await cli.RunAsync("fail", "7", "--token", "t", "--error", "smtp timeout", "--retry-in-ms", "500"));

        Assert.Equal("""{"lease_token":"t","error":"smtp timeout","dead":true}""", cli.Http.Requests[0].Body);
        Assert.Equal("""{"lease_token":"t","error":"smtp timeout","retry_in_ms":500}""", cli.Http.Requests[1].Body);
        Assert.StartsWith("job 7 failed, now dead\n", cli.Out.ToString());
    }

    [Fact]
    public async Task Missing_token_is_a_usage_error()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("complete", "7"));

        Assert.Equal(["error: Option '--token' is required. See 'conveyor complete --help'."], cli.ErrorLines);
    }

    [Fact]
    public async Task Jobs_passes_filters_as_query_parameters_and_prints_the_next_cursor()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.OK, $$"""{"jobs":[{{Jobs.Json(3, "dead")}}],"next_cursor":"3"}""");

        Assert.Equal(0, await cli.RunAsync("jobs", "--queue", "e mails", "--state", "dead", "--tag", "vip", "--limit", "1"));

        Assert.Equal("/v1/jobs?queue=e%20mails&state=dead&tag=vip&limit=1", Assert.Single(cli.Http.Requests).Path);
        var lines = cli.Out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("ID  QUEUE   KIND        STATE  ATTEMPT  PRIORITY  CREATED", lines[0]);
        Assert.Equal("3   emails  email.send  dead   0/25     0         2026-11-23 13:45:00Z", lines[1]);
        Assert.Equal("more: --cursor 3", lines[2]);
    }

    [Fact]
    public async Task An_unknown_state_filter_is_refused_before_sending()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("jobs", "--state", "done"));

        Assert.Empty(cli.Http.Requests);
        Assert.StartsWith("error: --state must be one of scheduled, available", Assert.Single(cli.ErrorLines));
    }

    [Fact]
    public async Task Get_with_events_shows_details_then_the_history()
    {
        var cli = new CliHarness();
        cli.Http.Respond = request => request.RequestUri!.AbsolutePath.EndsWith("/events", StringComparison.Ordinal)
            ? StubHandler.Json(
                HttpStatusCode.OK,
                """[{"at":"2026-11-23T13:45:01Z","type":"failed","state":"scheduled","attempt":1,"message":"smtp\ntimeout"}]""")
            : StubHandler.Json(HttpStatusCode.OK, Jobs.Json(5, "scheduled"));

        Assert.Equal(0, await cli.RunAsync("get", "5", "--events"));

        var text = cli.Out.ToString();
        Assert.Contains("state            scheduled\n", text);
        Assert.Contains("tags             welcome\n", text);
        Assert.Contains("payload          {\"to\":\"a@b.c\"}\n", text);
        Assert.Contains("AT                    EVENT   STATE      ATTEMPT  MESSAGE\n", text);
        Assert.Contains("2026-11-23 13:45:01Z  failed  scheduled  1        smtp timeout\n", text);
    }

    [Fact]
    public async Task Queues_prints_counts_per_state_and_pause_names_the_queue()
    {
        var cli = new CliHarness();
        const string Queue = """
            {"name":"emails","paused":true,
             "counts":{"scheduled":1,"available":20,"running":3,"completed":400,"dead":0,"cancelled":2}}
            """;
        cli.Http.Respond = request => StubHandler.Json(HttpStatusCode.OK, request.Method == HttpMethod.Get ? $"[{Queue}]" : Queue);

        Assert.Equal(0, await cli.RunAsync("queues"));
        Assert.Equal(0, await cli.RunAsync("pause", "emails"));

        Assert.Equal(
            """
            QUEUE   STATUS  SCHEDULED  AVAILABLE  RUNNING  COMPLETED  DEAD  CANCELLED
            emails  paused  1          20         3        400        0     2
            queue 'emails' paused: it accepts jobs but leases none until resumed

            """.ReplaceLineEndings("\n"),
            cli.Out.ToString());
        Assert.Equal("/v1/queues/emails/pause", cli.Http.Requests[1].Path);
    }

    [Fact]
    public async Task Stats_prints_uptime_counts_and_totals()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(
            HttpStatusCode.OK,
            """
            {"uptime_ms":3723000,"queues":2,
             "counts":{"scheduled":0,"available":5,"running":1,"completed":9,"dead":1,"cancelled":0},
             "enqueued":16,"completed":9,"failed":2}
            """);

        Assert.Equal(0, await cli.RunAsync("stats"));

        var text = cli.Out.ToString();
        Assert.StartsWith("uptime       1h 2m 3s\nqueues       2\n", text);
        Assert.Contains("since start  16 enqueued, 9 completed, 2 failed\n", text);
    }

    [Fact]
    public async Task No_command_is_a_usage_error_pointing_at_help()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync());

        Assert.Equal(["error: Required command was not provided. See 'conveyor --help'."], cli.ErrorLines);
    }
}
