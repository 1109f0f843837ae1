using System.Net;
using System.Text.Json;

namespace Conveyor.Cli.Tests;

public sealed class ScheduleCommandTests
{
    private const string Schedule = """
        {"name":"nightly","cron":"0 3 * * *","time_zone":"Europe/Berlin","queue":"reports","job":{"kind":"report","payload":null,"priority":0,
         "max_attempts":25,"tags":[]},"paused":false,"created_at":"2026-11-23T12:00:00Z","updated_at":"2026-11-23T12:00:00Z",
         "last_fired_for":null,"next_run_at":"2026-11-24T02:00:00Z"}
        """;

    [Fact]
    public async Task Schedule_set_puts_the_schedule_and_says_when_it_runs_next()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.Created, Schedule);
        Assert.Equal(0, await cli.RunAsync("schedule", "set", "nightly", "--cron", "0 3 * * *", "--queue", "reports",
            "--time-zone", "Europe/Berlin", "--kind", "report"));
        var (method, path, body) = Assert.Single(cli.Http.Requests);
        Assert.Equal(HttpMethod.Put, method);
        Assert.Equal("/v1/schedules/nightly", path);
        using var sent = JsonDocument.Parse(body!);
        Assert.Equal("0 3 * * *", sent.RootElement.GetProperty("cron").GetString());
        Assert.Equal("report", sent.RootElement.GetProperty("job").GetProperty("kind").GetString());
        Assert.Contains("next run 2026-11-24 02:00:00Z", cli.Out.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Schedule_list_and_delete_talk_to_the_schedule_routes()
    {
        var cli = new CliHarness();
        cli.Http.Respond = request => request.Method == HttpMethod.Delete
            ? new HttpResponseMessage(HttpStatusCode.NoContent)
            : StubHandler.Json(HttpStatusCode.OK, $"[{Schedule}]");
        Assert.Equal(0, await cli.RunAsync("schedule", "list"));
        Assert.Contains("nightly", cli.Out.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await cli.RunAsync("schedule", "delete", "nightly"));
        Assert.Equal([(HttpMethod.Get, "/v1/schedules"), (HttpMethod.Delete, "/v1/schedules/nightly")], cli.Http.Requests.Select(r => (r.Method, r.Path)));
    }

    [Fact]
    public async Task A_schedule_the_server_refuses_is_one_error_line()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Problem(HttpStatusCode.BadRequest, "The minute field '61' is out of range: it takes 0-59.");
        Assert.Equal(1, await cli.RunAsync("schedule", "set", "bad", "--cron", "61 * * * *", "--queue", "q"));
        Assert.Contains("out of range", Assert.Single(cli.ErrorLines), StringComparison.Ordinal);
    }
}
