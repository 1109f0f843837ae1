using System.Text.Json.Nodes;
using Conveyor.Server.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Conveyor.Server.Tests;

/// <summary>Schedules, retention, limits and delete against a real server whose clock the test moves.</summary>
public sealed class ScheduleAndRetentionTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 30, TimeSpan.Zero));
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-cron-").FullName;
    private RunningServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync() => await StartAsync();

    private async Task StartAsync()
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = _directory,
            Out = null,
            TimeProvider = _time,
            Retention = TimeSpan.FromDays(1),
        });
        _http = new HttpClient { BaseAddress = _server.BaseAddress };
    }

    private async Task RestartAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await StartAsync();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    private Task<int> RunScheduler() => _server.Services.GetRequiredService<CronScheduler>().RunOnceAsync();

    private async Task<int> CountJobs(string queue)
    {
        var (_, body, _) = await _http.Get($"/v1/jobs?queue={queue}&limit=500");
        return body!["jobs"]!.AsArray().Count;
    }

    [Fact]
    public async Task Schedules_are_created_listed_replaced_and_deleted_over_http()
    {
        var (created, schedule, _) = await _http.Send(HttpMethod.Put, "/v1/schedules/nightly",
            """{"cron":"0 3 * * *","time_zone":"Europe/Berlin","queue":"reports","job":{"kind":"report","payload":{"full":true},"tags":["n"]}}""");
        Assert.Equal(201, created);
        Assert.Equal("2026-11-24T02:00:00Z", (string)schedule!["next_run_at"]!);
        Assert.Equal("report", (string)schedule["job"]!["kind"]!);
        var (replaced, _, _) = await _http.Send(HttpMethod.Put, "/v1/schedules/nightly", """{"cron":"0 4 * * *","queue":"reports","paused":true}""");
        Assert.Equal(200, replaced);
        var (_, list, _) = await _http.Get("/v1/schedules");
        var only = list!.AsArray().Single()!;
        Assert.Equal("0 4 * * *", (string)only["cron"]!);
        Assert.True((bool)only["paused"]!);
        Assert.Null(only["next_run_at"]);
        Assert.Equal(204, (await _http.Send(HttpMethod.Delete, "/v1/schedules/nightly")).Status);
        Assert.Equal(404, (await _http.Send(HttpMethod.Delete, "/v1/schedules/nightly")).Status);
        Assert.Equal(404, (await _http.Get("/v1/schedules/nightly")).Status);
    }

    [Theory]
    [InlineData("""{"cron":"61 * * * *","queue":"q"}""", "minute")]
    [InlineData("""{"cron":"* * * * *","queue":"q","time_zone":"Mars/Olympus"}""", "time zone")]
    [InlineData("""{"cron":"* * * * *"}""", "queue is required")]
    [InlineData("""{"queue":"q"}""", "cron is required")]
    [InlineData("""{"cron":"* * * * *","queue":"q","job":{"priority":5000}}""", "priority")]
    public async Task A_bad_schedule_is_refused_with_a_sentence_and_changes_nothing(string json, string mentions)
    {
        var (status, body, type) = await _http.Send(HttpMethod.Put, "/v1/schedules/bad", json);
        Assert.Equal(400, status);
        Assert.Equal("application/problem+json", type);
        Assert.Contains(mentions, (string)body!["detail"]!, StringComparison.Ordinal);
        Assert.Empty((await _http.Get("/v1/schedules")).Body!.AsArray());
    }

    [Fact]
    public async Task Each_occurrence_is_enqueued_once_across_restarts_and_missed_ones_catch_up_once()
    {
        await _http.Send(HttpMethod.Put, "/v1/schedules/every-minute", """{"cron":"* * * * *","queue":"ticks","job":{"kind":"tick"}}""");
        Assert.Equal(0, await RunScheduler());
        _time.Advance(TimeSpan.FromSeconds(30)); // 12:01:00
        await RunScheduler();
        await RunScheduler();
        Assert.Equal(1, await CountJobs("ticks"));

        await RestartAsync();
        await RunScheduler();
        Assert.Equal(1, await CountJobs("ticks"));

        _time.Advance(TimeSpan.FromMinutes(5)); // 12:06:00: five occurrences passed while nobody ran the scheduler
        await RunScheduler();
        await RunScheduler();
        Assert.Equal(2, await CountJobs("ticks"));
        var (_, page, _) = await _http.Get("/v1/jobs?queue=ticks");
        var newest = page!["jobs"]![0]!;
        Assert.Equal("schedule:every-minute:" + new DateTimeOffset(2026, 11, 23, 12, 6, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(), (string)newest["idempotency_key"]!);
        Assert.Contains("schedule:every-minute", newest["tags"]!.AsArray().Select(t => (string)t!));
        var (_, schedule, _) = await _http.Get("/v1/schedules/every-minute");
        Assert.Equal("2026-11-23T12:06:00Z", (string)schedule!["last_fired_for"]!);
        Assert.Equal("2026-11-23T12:07:00Z", (string)schedule["next_run_at"]!);
    }

    [Fact]
    public async Task The_scheduler_sleeps_until_the_next_occurrence_and_wakes_for_a_schedule_made_meanwhile()
    {
        // With no schedule the loop sleeps its full recheck (a minute); this one's first occurrence is 30 s away.
        Assert.Equal(201, (await _http.Send(HttpMethod.Put, "/v1/schedules/every-minute", """{"cron":"* * * * *","queue":"woken","job":{"kind":"tick"}}""")).Status);
        var store = _server.Services.GetRequiredService<IJobStore>();
        var leased = store.JobLeaseAvailableAsync(new LeaseRequest("woken", 1, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(10), "w"), CancellationToken.None).AsTask();

        _time.Advance(TimeSpan.FromSeconds(30)); // 12:01:00, the first occurrence
        var moved = TimeSpan.FromSeconds(30);
        // The loop reacts on its own thread: a second of real time per step, then the clock moves a second.
        for (var i = 0; i < 45 && await Task.WhenAny(leased, Task.Delay(TimeSpan.FromSeconds(1))) != leased; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            moved += TimeSpan.FromSeconds(1);
        }
        var job = Assert.Single(await leased.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Equal("schedule:every-minute:" + new DateTimeOffset(2026, 11, 23, 12, 1, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(), job.IdempotencyKey);
        Assert.True(moved < ServerOptions.ExclusiveStoreRecheck, $"enqueued only after {moved.TotalSeconds} s of the clock, for an occurrence 30 s away");
    }

    [Fact]
    public void After_a_long_outage_of_a_per_second_schedule_the_newest_occurrence_is_the_one_due()
    {
        // Three days of a per-second schedule is 259,200 missed occurrences, more than one bounded walk takes.
        var now = new DateTimeOffset(2026, 11, 23, 12, 0, 30, 500, TimeSpan.Zero);
        var schedule = new Schedule
        {
            Name = "per-second",
            Cron = "* * * * * *",
            Template = new NewJob { Queue = "ticks" },
            CreatedAt = now - TimeSpan.FromDays(30),
            LastFiredFor = now - TimeSpan.FromDays(3),
        };
        Assert.Equal(new DateTimeOffset(2026, 11, 23, 12, 0, 30, TimeSpan.Zero), CronScheduler.LatestDue(schedule, now));
        Assert.Equal(new DateTimeOffset(2026, 11, 23, 12, 0, 30, TimeSpan.Zero), CronScheduler.LatestDue(schedule with { LastFiredFor = now - TimeSpan.FromMinutes(5) }, now));
    }

    [Fact]
    public async Task Retention_deletes_finished_jobs_older_than_the_queue_setting_or_the_server_default()
    {
        var (status, queue, _) = await _http.Send(HttpMethod.Put, "/v1/queues/short/settings", """{"retention_ms":3600000}""");
        Assert.Equal(200, status);
        Assert.Equal(3600000, (long)queue!["settings"]!["retention_ms"]!);
        var shortDone = await Finish("short");
        var defaultDone = await Finish("long");
        var waiting = (long)(await _http.Enqueue("short"))["id"]!;

        _time.Advance(TimeSpan.FromHours(2));
        await _server.Services.GetRequiredService<RetentionSweeper>().RunOnceAsync();
        Assert.Equal(404, (await _http.Get($"/v1/jobs/{shortDone}")).Status);
        Assert.Equal(200, (await _http.Get($"/v1/jobs/{defaultDone}")).Status);
        Assert.Equal(200, (await _http.Get($"/v1/jobs/{waiting}")).Status);

        _time.Advance(TimeSpan.FromDays(1));
        await _server.Services.GetRequiredService<RetentionSweeper>().RunOnceAsync();
        Assert.Equal(404, (await _http.Get($"/v1/jobs/{defaultDone}")).Status);
        Assert.Equal(200, (await _http.Get($"/v1/jobs/{waiting}")).Status);
        Assert.Equal(0, (long)(await _http.Counts("long"))["completed"]!);
    }

    [Fact]
    public async Task Under_a_steady_flow_retention_keeps_the_store_bounded()
    {
        Assert.Equal(200, (await _http.Send(HttpMethod.Put, "/v1/queues/soak/settings", """{"retention_ms":3600000}""")).Status);
        var sweeper = _server.Services.GetRequiredService<RetentionSweeper>();
        for (var round = 0; round < 6; round++)
        {
            var batch = "[" + string.Join(",", Enumerable.Repeat("{}", 100)) + "]";
            Assert.Equal(200, (await _http.Post("/v1/queues/soak/jobs/batch", batch)).Status);
            var leased = await _http.Lease("soak", max: 100);
            var acks = string.Join(",", leased.Select(j => $$"""{"id":{{(long)j!["id"]!}},"lease_token":"{{(string)j["lease"]!["token"]!}}"}"""));
            Assert.Equal(200, (await _http.Post("/v1/jobs/ack", $$"""{"complete":[{{acks}}]}""")).Status);
            _time.Advance(TimeSpan.FromMinutes(40));
            await sweeper.RunOnceAsync();
            // Jobs finished within the last hour stay: at most two rounds' worth, whatever the number of rounds.
            Assert.InRange((long)(await _http.Counts("soak"))["completed"]!, 100, 200);
        }
        var (_, page, _) = await _http.Get("/v1/jobs?queue=soak&limit=500");
        Assert.InRange(page!["jobs"]!.AsArray().Count, 100, 200);
    }

    private async Task<long> Finish(string queue)
    {
        var id = (long)(await _http.Enqueue(queue))["id"]!;
        var token = (string)(await _http.Lease(queue)).Single()!["lease"]!["token"]!;
        Assert.Equal(200, (await _http.Post($"/v1/jobs/{id}/complete", $$"""{"lease_token":"{{token}}"}""")).Status);
        return id;
    }

    [Fact]
    public async Task A_concurrency_limit_set_over_http_caps_leases()
    {
        Assert.Equal(200, (await _http.Send(HttpMethod.Put, "/v1/queues/capped/settings", """{"max_running":2,"rate_per_second":100}""")).Status);
        for (var i = 0; i < 4; i++) await _http.Enqueue("capped");
        Assert.Equal(2, (await _http.Lease("capped", max: 10)).Count);
        Assert.Empty(await _http.Lease("capped", max: 10));
        var (_, queues, _) = await _http.Get("/v1/queues");
        var settings = queues!.AsArray().Single(q => (string)q!["name"]! == "capped")!["settings"]!;
        Assert.Equal(2, (int)settings["max_running"]!);
        Assert.Equal(400, (await _http.Send(HttpMethod.Put, "/v1/queues/capped/settings", """{"max_running":0}""")).Status);
        Assert.Equal(400, (await _http.Send(HttpMethod.Put, "/v1/queues/capped/settings", """{"rate_per_second":-1}""")).Status);
    }

    [Fact]
    public async Task Delete_removes_a_finished_job_and_refuses_a_running_one()
    {
        var done = await Finish("del");
        Assert.Equal(204, (await _http.Send(HttpMethod.Delete, $"/v1/jobs/{done}")).Status);
        Assert.Equal(404, (await _http.Get($"/v1/jobs/{done}")).Status);
        var running = (long)(await _http.Enqueue("del"))["id"]!;
        await _http.Lease("del");
        var (status, body, _) = await _http.Send(HttpMethod.Delete, $"/v1/jobs/{running}");
        Assert.Equal(409, status);
        Assert.Contains("cancel it first", (string)body!["detail"]!, StringComparison.Ordinal);
        Assert.Equal(404, (await _http.Send(HttpMethod.Delete, "/v1/jobs/987654")).Status);
    }
}
