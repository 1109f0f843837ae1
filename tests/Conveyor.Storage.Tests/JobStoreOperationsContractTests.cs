namespace Conveyor.Storage.Tests;

// The contract for deletion, retention, queue limits and schedules, part of the same suite as JobStoreContractTests.
public abstract partial class JobStoreContractTests
{
    [Fact]
    public async Task Delete_removes_a_waiting_or_finished_job_and_its_history_but_not_a_running_one()
    {
        var waiting = await Enqueue();
        Assert.True((await Store.JobDeleteAsync(waiting, None)).IsOk);
        Assert.Null(await Store.JobGetAsync(waiting, None));
        Assert.Null(await Store.JobEventsAsync(waiting, None));
        Assert.Empty(await Lease());

        var running = await EnqueueThenLease();
        Assert.Equal(OutcomeStatus.WrongState, (await Store.JobDeleteAsync(running.Id, None)).Status);
        await Ack(AckRequest.Fail(running.Id, running.Lease!.Token, "x", dead: true));
        Assert.True((await Store.JobDeleteAsync(running.Id, None)).IsOk);
        Assert.Equal(OutcomeStatus.NotFound, (await Store.JobDeleteAsync(running.Id, None)).Status);
        Assert.Equal(StateCounts.Zero, (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Counts);
    }

    [Fact]
    public async Task Deleting_the_head_of_a_partition_lets_the_next_job_run()
    {
        var first = await Enqueue(j => j with { PartitionKey = "p", RunAt = Time.GetUtcNow().AddMinutes(5) });
        var second = await Enqueue(j => j with { PartitionKey = "p" });
        Assert.Empty(await Lease());
        await Store.JobDeleteAsync(first, None);
        await MaintainAsync();
        Assert.Equal(second, Assert.Single(await Lease()).Id);
    }

    [Fact]
    public async Task Retention_deletes_exactly_the_finished_jobs_that_finished_before_the_cut()
    {
        var old = await EnqueueThenLease();
        await Ack(AckRequest.Complete(old.Id, old.Lease!.Token));
        var oldDead = await EnqueueThenLease();
        await Ack(AckRequest.Fail(oldDead.Id, oldDead.Lease!.Token, "x", dead: true));
        var cancelled = await Enqueue();
        await Store.JobCancelAsync(cancelled, None);
        var cut = Time.GetUtcNow().AddSeconds(1);
        Time.Advance(TimeSpan.FromSeconds(2));
        var recent = await EnqueueThenLease();
        await Ack(AckRequest.Complete(recent.Id, recent.Lease!.Token));
        var waiting = await Enqueue();
        var other = await Enqueue(queue: Queue + "-other");

        Assert.Equal(2, await Store.JobDeleteFinishedAsync(Queue, cut, limit: 2, None));
        Assert.Equal(1, await Store.JobDeleteFinishedAsync(Queue, cut, limit: 100, None));
        Assert.Equal(0, await Store.JobDeleteFinishedAsync(Queue, cut, limit: 100, None));
        foreach (var gone in new[] { old.Id, oldDead.Id, cancelled }) Assert.Null(await Store.JobGetAsync(gone, None));
        foreach (var kept in new[] { recent.Id, waiting, other }) Assert.NotNull(await Store.JobGetAsync(kept, None));
        Assert.Equal(new StateCounts(0, 1, 0, 1, 0, 0), (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Counts);
    }

    [Fact]
    public async Task Queue_settings_are_kept_and_reported()
    {
        var info = await Store.QueueConfigureAsync(Queue, new QueueSettings { MaxRunning = 3, RatePerSecond = 2.5, Retention = TimeSpan.FromHours(6) }, None);
        Assert.Equal(3, info.Settings.MaxRunning);
        Assert.Equal(2.5, info.Settings.RatePerSecond);
        Assert.Equal(TimeSpan.FromHours(6), info.Settings.Retention);
        Store = await ReopenAsync();
        var listed = (await Store.QueueListAsync(None)).Single(q => q.Name == Queue);
        Assert.Equal(info.Settings, listed.Settings);
        Assert.Equal(QueueSettings.None, (await Store.QueueConfigureAsync(Queue, QueueSettings.None, None)).Settings);
    }

    [Fact]
    public async Task Push_settings_and_job_destinations_are_kept_and_a_failed_attempt_keeps_its_result()
    {
        const string destinations = """[{"type":"http","url":"http://127.0.0.1:9/hook","method":"POST"}]""";
        var settings = new QueueSettings { Push = true, DestinationsJson = destinations, Retention = TimeSpan.Zero };
        Assert.Equal(settings, (await Store.QueueConfigureAsync(Queue, settings, None)).Settings);

        var id = await Enqueue(j => j with { DestinationsJson = destinations });
        var leased = Assert.Single(await Lease());
        Assert.Equal(destinations, leased.DestinationsJson);
        // Push delivery records the destinations already delivered in the result of a failed attempt.
        await Ack(AckRequest.Fail(id, leased.Lease!.Token, "destination 1 failed", retryIn: TimeSpan.Zero, resultJson: """{"delivered":[0]}"""));
        var again = Assert.Single(await Lease());
        Assert.Equal("""{"delivered":[0]}""", again.ResultJson);
        await Ack(AckRequest.Fail(id, again.Lease!.Token, "still failing", dead: true));
        Assert.Equal("""{"delivered":[0]}""", (await Store.JobGetAsync(id, None))!.ResultJson); // no result given: the last one stays

        Store = await ReopenAsync();
        Assert.Equal(settings, (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Settings);
        Assert.Equal(destinations, (await Store.JobGetAsync(id, None))!.DestinationsJson);
    }

    [Fact]
    public async Task A_concurrency_limit_caps_the_running_jobs_of_a_queue()
    {
        await Store.QueueConfigureAsync(Queue, new QueueSettings { MaxRunning = 2 }, None);
        for (var i = 0; i < 5; i++) await Enqueue();
        var first = await Lease(max: 10);
        Assert.Equal(2, first.Count);
        Assert.Empty(await Lease(max: 10));
        await Ack(AckRequest.Complete(first[0].Id, first[0].Lease!.Token));
        Assert.Single(await Lease(max: 10));
    }

    [Fact]
    public async Task A_rate_limit_spreads_job_starts_over_time()
    {
        await Store.QueueConfigureAsync(Queue, new QueueSettings { RatePerSecond = 2 }, None);
        for (var i = 0; i < 10; i++) await Enqueue();
        Assert.Equal(2, (await Lease(max: 10)).Count);
        Assert.Empty(await Lease(max: 10));
        Time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Single(await Lease(max: 10));
        Time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(2, (await Lease(max: 10)).Count); // the bucket holds one second's worth, not ten
    }

    [Fact]
    public async Task Schedules_are_stored_listed_replaced_and_deleted()
    {
        var name = Queue + "-nightly";
        var schedule = new Schedule
        {
            Name = name,
            Cron = "0 3 * * *",
            TimeZone = "Europe/Berlin",
            Template = new NewJob { Queue = Queue, Kind = "report", PayloadJson = """{"full":true}""", Priority = 4, MaxAttempts = 3, Tags = ["nightly"] },
        };
        var stored = await Store.ScheduleUpsertAsync(schedule, None);
        Assert.Equal(Time.GetUtcNow(), stored.CreatedAt);
        Assert.Null(stored.LastFiredFor);
        var fired = Time.GetUtcNow().AddMinutes(-1);
        await Store.ScheduleRecordFiredAsync(name, fired, None);
        await Store.ScheduleRecordFiredAsync(name, fired.AddHours(-1), None); // never moves back
        Time.Advance(TimeSpan.FromMinutes(1));
        var replaced = await Store.ScheduleUpsertAsync(schedule with { Cron = "0 4 * * *", Paused = true }, None);
        Assert.Equal(stored.CreatedAt, replaced.CreatedAt);
        Assert.Equal(fired, replaced.LastFiredFor);

        Store = await ReopenAsync();
        var listed = (await Store.ScheduleListAsync(None)).Single(s => s.Name == name);
        Assert.Equal("0 4 * * *", listed.Cron);
        Assert.True(listed.Paused);
        Assert.Equal("Europe/Berlin", listed.TimeZone);
        Assert.Equal(Queue, listed.Template.Queue);
        Assert.Equal("report", listed.Template.Kind);
        Assert.Equal("""{"full":true}""", listed.Template.PayloadJson);
        Assert.Equal(4, listed.Template.Priority);
        Assert.Equal(3, listed.Template.MaxAttempts);
        Assert.Equal(["nightly"], listed.Template.Tags);
        Assert.Equal(fired, listed.LastFiredFor);
        Assert.True(await Store.ScheduleDeleteAsync(name, None));
        Assert.False(await Store.ScheduleDeleteAsync(name, None));
        Assert.DoesNotContain(await Store.ScheduleListAsync(None), s => s.Name == name);
    }
}

public abstract partial class JobStoreContractTests
{
    [Fact]
    public async Task Search_finds_jobs_by_text_in_their_payload()
    {
        var ada = await Enqueue(j => j with { PayloadJson = """{"to":"ada@example.com"}""" });
        await Enqueue(j => j with { PayloadJson = """{"to":"bob@example.com"}""" });
        await Enqueue(j => j with { PayloadJson = null });
        var found = await Store.JobSearchAsync(new JobQuery { Queue = Queue, Text = "ada@" }, None);
        Assert.Equal(ada, Assert.Single(found.Jobs).Id);
        Assert.Empty((await Store.JobSearchAsync(new JobQuery { Queue = Queue, Text = "ADA@" }, None)).Jobs);
        var running = Assert.Single(await Lease());
        Assert.Equal(ada, running.Id);
        Assert.Equal(ada, Assert.Single((await Store.JobSearchAsync(new JobQuery { Queue = Queue, State = JobState.Running, Text = "ada" }, None)).Jobs).Id);
    }
}
