using Microsoft.Extensions.Time.Testing;

namespace Conveyor.Storage.Tests;

/// <summary>
/// The store contract: every promise of DESIGN.md §3, written once. Each store's test class subclasses this
/// and says how to open (and reopen) a fresh store. Time is a fake clock; maintenance runs when a test says so.
/// </summary>
public abstract partial class JobStoreContractTests : IAsyncLifetime
{
    protected readonly FakeTimeProvider Time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
    protected IJobStore Store = null!;
    private static int _counter;
    protected readonly string Queue = $"q{Interlocked.Increment(ref _counter)}";

    protected abstract Task<IJobStore> OpenAsync();

    /// <summary>Closes and reopens the same store, as after a restart.</summary>
    protected abstract Task<IJobStore> ReopenAsync();

    /// <summary>Runs the scheduler and reaper once at the fake clock's time.</summary>
    protected abstract Task MaintainAsync();

    /// <summary>
    /// Capability: leases are durable rows that outlive a restart (Postgres, where several servers share leases), rather than
    /// memory that a restart forgets (SQLite, DESIGN.md §5). Either way the job runs again: at once, or when the lease expires.
    /// </summary>
    protected abstract bool LeasesSurviveRestart { get; }

    public async Task InitializeAsync() => Store = await OpenAsync();

    public virtual async Task DisposeAsync() => await Store.DisposeAsync();

    private static readonly CancellationToken None = CancellationToken.None;

    protected async Task<long> Enqueue(Func<NewJob, NewJob>? shape = null, string? queue = null)
    {
        var job = new NewJob { Queue = queue ?? Queue, Kind = "test", PayloadJson = """{"n":1}""" };
        if (shape is not null) job = shape(job);
        return (await Store.JobInsertManyAsync([job], None))[0].Id;
    }

    protected async Task<IReadOnlyList<Job>> Lease(int max = 1, TimeSpan? lease = null, TimeSpan? wait = null, string? queue = null) =>
        await Store.JobLeaseAvailableAsync(new LeaseRequest(queue ?? Queue, max, lease ?? TimeSpan.FromSeconds(30), wait ?? TimeSpan.Zero, "w1"), None);

    protected async Task<Job> Get(long id) => (await Store.JobGetAsync(id, None))!;

    protected async Task<JobOutcome> Ack(AckRequest ack) => (await Store.JobAckManyAsync([ack], None))[0];

    [Fact]
    public async Task Enqueue_makes_an_available_job_with_its_fields()
    {
        var id = await Enqueue(j => j with { Priority = 5, Tags = ["a", "b"], MaxAttempts = 3, TraceParent = "00-abc-def-01" });
        var job = await Get(id);
        Assert.Equal(JobState.Available, job.State);
        Assert.Equal(Queue, job.Queue);
        Assert.Equal("test", job.Kind);
        Assert.Equal("""{"n":1}""", job.PayloadJson);
        Assert.Equal(5, job.Priority);
        Assert.Equal(["a", "b"], job.Tags);
        Assert.Equal(3, job.MaxAttempts);
        Assert.Equal(0, job.Attempt);
        Assert.Equal("00-abc-def-01", job.TraceParent);
        Assert.Equal(Time.GetUtcNow(), job.CreatedAt);
        Assert.Null(job.Lease);
    }

    [Fact]
    public async Task Ids_increase_in_insert_order()
    {
        var ids = await Store.JobInsertManyAsync([.. Enumerable.Range(0, 5).Select(_ => new NewJob { Queue = Queue })], None);
        Assert.Equal(ids.Select(i => i.Id).Order(), ids.Select(i => i.Id));
        Assert.Equal(5, ids.Select(i => i.Id).Distinct().Count());
    }

    [Fact]
    public async Task An_id_is_never_handed_out_again_even_after_the_newest_job_is_deleted_and_the_store_reopens()
    {
        var kept = await Enqueue();
        var newest = await Enqueue();
        Assert.True((await Store.JobDeleteAsync(newest, None)).IsOk);
        Store = await ReopenAsync();
        Assert.True(await Enqueue() > newest);
        Assert.Equal(JobState.Available, (await Get(kept)).State);
    }

    [Fact]
    public async Task Delayed_job_is_scheduled_until_run_at_then_available()
    {
        var id = await Enqueue(j => j with { RunAt = Time.GetUtcNow().AddSeconds(10) });
        Assert.Equal(JobState.Scheduled, (await Get(id)).State);
        Assert.Empty(await Lease());
        Time.Advance(TimeSpan.FromSeconds(10));
        await MaintainAsync();
        Assert.Equal(JobState.Available, (await Get(id)).State);
        Assert.Equal(id, Assert.Single(await Lease()).Id);
    }

    [Fact]
    public async Task Lease_marks_running_counts_the_attempt_and_hands_out_a_token()
    {
        var id = await Enqueue();
        var job = Assert.Single(await Lease(lease: TimeSpan.FromSeconds(20)));
        Assert.Equal(id, job.Id);
        Assert.Equal(JobState.Running, job.State);
        Assert.Equal(1, job.Attempt);
        Assert.NotNull(job.Lease);
        Assert.Equal("w1", job.Lease!.Owner);
        Assert.Equal(Time.GetUtcNow().AddSeconds(20), job.Lease.ExpiresAt);
        Assert.Equal(JobState.Running, (await Get(id)).State);
        Assert.Empty(await Lease());
    }

    [Fact]
    public async Task Lease_order_is_priority_then_run_at_then_id()
    {
        var low = await Enqueue(j => j with { Priority = 0 });
        var high = await Enqueue(j => j with { Priority = 10 });
        var lowEarlier = await Enqueue(j => j with { Priority = 0, RunAt = Time.GetUtcNow().AddMilliseconds(-500) });
        var highLater = await Enqueue(j => j with { Priority = 10 });
        var leased = await Lease(max: 10);
        Assert.Equal([high, highLater, lowEarlier, low], leased.Select(j => j.Id));
    }

    [Fact]
    public async Task Complete_with_the_current_token_finishes_the_job_with_its_result()
    {
        var job = await EnqueueThenLease();
        var outcome = await Ack(AckRequest.Complete(job.Id, job.Lease!.Token, """{"ok":true}"""));
        Assert.True(outcome.IsOk);
        var done = await Get(job.Id);
        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal("""{"ok":true}""", done.ResultJson);
        Assert.Equal(1, done.Attempt);
        Assert.NotNull(done.FinishedAt);
        Assert.NotNull(done.StartedAt);
        Assert.Null(done.Lease);
    }

    private async Task<Job> EnqueueThenLease()
    {
        await Enqueue();
        return Assert.Single(await Lease());
    }

    [Fact]
    public async Task Complete_with_a_stale_token_is_refused_and_changes_nothing()
    {
        var job = await EnqueueThenLease();
        var outcome = await Ack(AckRequest.Complete(job.Id, "not-the-token", "1"));
        Assert.Equal(OutcomeStatus.StaleLease, outcome.Status);
        var after = await Get(job.Id);
        Assert.Equal(JobState.Running, after.State);
        Assert.Equal(job.Lease!.Token, after.Lease!.Token);
        Assert.Null(after.ResultJson);
    }

    [Fact]
    public async Task Complete_of_an_unknown_job_is_not_found()
    {
        Assert.Equal(OutcomeStatus.NotFound, (await Ack(AckRequest.Complete(987654321, "t"))).Status);
    }

    [Fact]
    public async Task Completing_twice_is_refused_the_second_time()
    {
        var job = await EnqueueThenLease();
        Assert.True((await Ack(AckRequest.Complete(job.Id, job.Lease!.Token))).IsOk);
        var again = await Ack(AckRequest.Complete(job.Id, job.Lease.Token));
        Assert.Equal(OutcomeStatus.StaleLease, again.Status);
        Assert.Equal(JobState.Completed, again.State);
    }

    [Fact]
    public async Task Fail_with_attempts_left_schedules_a_retry_with_backoff_and_records_the_error()
    {
        var job = await EnqueueThenLease();
        var outcome = await Ack(AckRequest.Fail(job.Id, job.Lease!.Token, "boom", "at X.Y()"));
        Assert.Equal(JobState.Scheduled, outcome.State);
        var after = await Get(job.Id);
        Assert.Equal(JobState.Scheduled, after.State);
        Assert.True(after.RunAt > Time.GetUtcNow());
        Assert.Contains("boom", after.ErrorsJson);
        Assert.Contains("at X.Y()", after.ErrorsJson);
        Assert.Empty(await Lease());
        Time.Advance(TimeSpan.FromHours(2));
        await MaintainAsync();
        var again = Assert.Single(await Lease());
        Assert.Equal(2, again.Attempt);
    }

    [Fact]
    public async Task Fail_with_retry_in_uses_that_delay()
    {
        var job = await EnqueueThenLease();
        await Ack(AckRequest.Fail(job.Id, job.Lease!.Token, "later", retryIn: TimeSpan.FromSeconds(7)));
        Assert.Equal(Time.GetUtcNow().AddSeconds(7), (await Get(job.Id)).RunAt);
    }

    [Fact]
    public async Task Fail_on_the_last_attempt_makes_the_job_dead()
    {
        var id = await Enqueue(j => j with { MaxAttempts = 2 });
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            Time.Advance(TimeSpan.FromHours(2));
            await MaintainAsync();
            var job = Assert.Single(await Lease());
            Assert.Equal(attempt, job.Attempt);
            await Ack(AckRequest.Fail(id, job.Lease!.Token, $"failure {attempt}"));
        }
        var dead = await Get(id);
        Assert.Equal(JobState.Dead, dead.State);
        Assert.NotNull(dead.FinishedAt);
        Assert.Contains("failure 1", dead.ErrorsJson);
        Assert.Contains("failure 2", dead.ErrorsJson);
    }

    [Fact]
    public async Task Fail_with_dead_skips_the_remaining_attempts()
    {
        var job = await EnqueueThenLease();
        Assert.Equal(JobState.Dead, (await Ack(AckRequest.Fail(job.Id, job.Lease!.Token, "poison", dead: true))).State);
    }

    [Fact]
    public async Task An_expired_lease_makes_the_job_available_again_with_the_attempt_counted()
    {
        var job = await EnqueueThenLease();
        Time.Advance(TimeSpan.FromSeconds(31));
        await MaintainAsync();
        var after = await Get(job.Id);
        Assert.Equal(JobState.Available, after.State);
        Assert.Equal(1, after.Attempt);
        var second = Assert.Single(await Lease());
        Assert.Equal(2, second.Attempt);
        Assert.NotEqual(job.Lease!.Token, second.Lease!.Token);
        Assert.Equal(OutcomeStatus.StaleLease, (await Ack(AckRequest.Complete(job.Id, job.Lease.Token))).Status);
        Assert.Contains((await Store.JobEventsAsync(job.Id, None))!, e => e.Type == JobEventTypes.LeaseExpired);
    }

    [Fact]
    public async Task An_expired_lease_on_the_last_attempt_makes_the_job_dead()
    {
        await Enqueue(j => j with { MaxAttempts = 1 });
        var job = Assert.Single(await Lease());
        Time.Advance(TimeSpan.FromMinutes(1));
        await MaintainAsync();
        Assert.Equal(JobState.Dead, (await Get(job.Id)).State);
    }

    [Fact]
    public async Task Heartbeat_extends_the_lease_and_records_progress()
    {
        var job = await EnqueueThenLease();
        Time.Advance(TimeSpan.FromSeconds(25));
        Assert.True((await Store.JobHeartbeatAsync(job.Id, job.Lease!.Token, TimeSpan.FromSeconds(30), """{"pct":50}""", None)).IsOk);
        Time.Advance(TimeSpan.FromSeconds(25));
        await MaintainAsync();
        var after = await Get(job.Id);
        Assert.Equal(JobState.Running, after.State);
        Assert.Equal("""{"pct":50}""", after.ProgressJson);
        Assert.Equal(Time.GetUtcNow().AddSeconds(5), after.Lease!.ExpiresAt);
    }

    [Fact]
    public async Task Heartbeat_with_a_stale_token_is_refused()
    {
        var job = await EnqueueThenLease();
        Assert.Equal(OutcomeStatus.StaleLease, (await Store.JobHeartbeatAsync(job.Id, "nope", TimeSpan.FromSeconds(30), null, None)).Status);
    }

    [Fact]
    public async Task Cancel_stops_a_waiting_or_running_job_and_refuses_a_finished_one()
    {
        var waiting = await Enqueue();
        Assert.Equal(JobState.Cancelled, (await Store.JobCancelAsync(waiting, None)).State);
        var running = await EnqueueThenLease();
        Assert.True((await Store.JobCancelAsync(running.Id, None)).IsOk);
        Assert.Equal(OutcomeStatus.StaleLease, (await Ack(AckRequest.Complete(running.Id, running.Lease!.Token))).Status);
        Assert.Equal(JobState.Cancelled, (await Get(running.Id)).State);
        Assert.Equal(OutcomeStatus.WrongState, (await Store.JobCancelAsync(running.Id, None)).Status);
        Assert.Equal(OutcomeStatus.NotFound, (await Store.JobCancelAsync(123456789, None)).Status);
        Assert.Empty(await Lease());
    }

    [Fact]
    public async Task Retry_makes_a_dead_job_available_with_attempts_reset()
    {
        var job = await EnqueueThenLease();
        await Ack(AckRequest.Fail(job.Id, job.Lease!.Token, "x", dead: true));
        Assert.True((await Store.JobRetryAsync(job.Id, None)).IsOk);
        var after = await Get(job.Id);
        Assert.Equal(JobState.Available, after.State);
        Assert.Equal(0, after.Attempt);
        Assert.Null(after.FinishedAt);
        Assert.Equal(job.Id, Assert.Single(await Lease()).Id);
        Assert.Contains((await Store.JobEventsAsync(job.Id, None))!, e => e.Type == JobEventTypes.Retried);
    }

    [Fact]
    public async Task Retry_of_a_job_that_is_not_dead_or_cancelled_is_refused()
    {
        var id = await Enqueue();
        Assert.Equal(OutcomeStatus.WrongState, (await Store.JobRetryAsync(id, None)).Status);
        Assert.Equal(OutcomeStatus.NotFound, (await Store.JobRetryAsync(999999999, None)).Status);
    }

    [Fact]
    public async Task Idempotency_key_returns_the_existing_job_instead_of_a_second_one()
    {
        var first = await Store.JobInsertManyAsync([new NewJob { Queue = Queue, IdempotencyKey = "k1" }], None);
        var second = await Store.JobInsertManyAsync([new NewJob { Queue = Queue, IdempotencyKey = "k1" }, new NewJob { Queue = Queue, IdempotencyKey = "k1" }], None);
        Assert.False(first[0].Replayed);
        Assert.All(second, s => Assert.True(s.Replayed));
        Assert.All(second, s => Assert.Equal(first[0].Id, s.Id));
        var other = await Store.JobInsertManyAsync([new NewJob { Queue = Queue + "x", IdempotencyKey = "k1" }], None);
        Assert.False(other[0].Replayed);
        Assert.Equal(1, (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Counts.Available);
    }

    [Fact]
    public async Task Same_idempotency_key_twice_in_one_batch_inserts_once()
    {
        var ids = await Store.JobInsertManyAsync([new NewJob { Queue = Queue, IdempotencyKey = "dup" }, new NewJob { Queue = Queue, IdempotencyKey = "dup" }], None);
        Assert.False(ids[0].Replayed);
        Assert.True(ids[1].Replayed);
        Assert.Equal(ids[0].Id, ids[1].Id);
    }

    [Fact]
    public async Task Jobs_sharing_a_partition_key_run_one_at_a_time_in_id_order()
    {
        var a1 = await Enqueue(j => j with { PartitionKey = "a" });
        var a2 = await Enqueue(j => j with { PartitionKey = "a", Priority = 100 });
        var b1 = await Enqueue(j => j with { PartitionKey = "b" });
        var leased = await Lease(max: 10);
        Assert.Equal([a1, b1], leased.Select(j => j.Id).Order());
        Assert.Empty(await Lease(max: 10));
        var first = leased.Single(j => j.Id == a1);
        await Ack(AckRequest.Complete(a1, first.Lease!.Token));
        Assert.Equal(a2, Assert.Single(await Lease(max: 10)).Id);
    }

    [Fact]
    public async Task A_partition_stays_blocked_while_its_first_job_waits_for_a_retry()
    {
        var a1 = await Enqueue(j => j with { PartitionKey = "p" });
        await Enqueue(j => j with { PartitionKey = "p" });
        var job = Assert.Single(await Lease(max: 10));
        await Ack(AckRequest.Fail(a1, job.Lease!.Token, "try again", retryIn: TimeSpan.FromSeconds(5)));
        Assert.Empty(await Lease(max: 10));
        Time.Advance(TimeSpan.FromSeconds(5));
        await MaintainAsync();
        Assert.Equal(a1, Assert.Single(await Lease(max: 10)).Id);
    }

    [Fact]
    public async Task A_paused_queue_accepts_jobs_but_leases_none_until_resumed()
    {
        var info = await Store.QueueSetPausedAsync(Queue, true, None);
        Assert.True(info.Paused);
        await Enqueue();
        Assert.Empty(await Lease());
        Assert.False((await Store.QueueSetPausedAsync(Queue, false, None)).Paused);
        Assert.Single(await Lease());
    }

    [Fact]
    public async Task A_long_poll_lease_returns_when_a_job_arrives()
    {
        var waiting = Store.JobLeaseAvailableAsync(new LeaseRequest(Queue, 1, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(20), "w"), None).AsTask();
        Assert.False(waiting.IsCompleted);
        var id = await Enqueue();
        var leased = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(id, Assert.Single(leased).Id);
    }

    [Fact]
    public async Task A_long_poll_lease_returns_empty_when_the_wait_ends()
    {
        var waiting = Store.JobLeaseAvailableAsync(new LeaseRequest(Queue, 1, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), "w"), None).AsTask();
        Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Empty(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Release_gives_a_leased_job_back_without_counting_the_attempt()
    {
        var job = await EnqueueThenLease();
        Assert.Equal(OutcomeStatus.StaleLease, (await Ack(AckRequest.Release(job.Id, "wrong"))).Status);
        var outcome = await Ack(AckRequest.Release(job.Id, job.Lease!.Token));
        Assert.Equal(JobState.Available, outcome.State);
        var after = await Get(job.Id);
        Assert.Equal(JobState.Available, after.State);
        Assert.Equal(0, after.Attempt);
        Assert.Equal(1, Assert.Single(await Lease()).Attempt);
    }

    [Fact]
    public async Task Waiting_for_a_result_returns_once_the_job_finishes()
    {
        var job = await EnqueueThenLease();
        var waiting = Store.JobWaitFinishedAsync(job.Id, TimeSpan.FromSeconds(20), None).AsTask();
        Assert.False(waiting.IsCompleted);
        await Ack(AckRequest.Complete(job.Id, job.Lease!.Token, "\"done\""));
        var finished = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobState.Completed, finished!.State);
        Assert.Equal("\"done\"", finished.ResultJson);
        Assert.Equal(JobState.Completed, (await Store.JobWaitFinishedAsync(job.Id, TimeSpan.FromSeconds(5), None))!.State);
        Assert.Null(await Store.JobWaitFinishedAsync(777777777, TimeSpan.Zero, None));
    }

    [Fact]
    public async Task Waiting_for_a_result_gives_up_after_the_wait_with_the_job_as_it_is()
    {
        var id = await Enqueue();
        var waiting = Store.JobWaitFinishedAsync(id, TimeSpan.FromSeconds(3), None).AsTask();
        Time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(JobState.Available, (await waiting.WaitAsync(TimeSpan.FromSeconds(10)))!.State);
    }

    [Fact]
    public async Task Batch_ack_answers_each_item_on_its_own()
    {
        await Enqueue();
        await Enqueue();
        var leased = await Lease(max: 2);
        var outcomes = await Store.JobAckManyAsync(
        [
            AckRequest.Complete(leased[0].Id, leased[0].Lease!.Token),
            AckRequest.Complete(leased[1].Id, "wrong"),
            AckRequest.Fail(leased[1].Id, leased[1].Lease!.Token, "bad"),
            AckRequest.Complete(555555555, "x"),
        ], None);
        Assert.Equal([OutcomeStatus.Ok, OutcomeStatus.StaleLease, OutcomeStatus.Ok, OutcomeStatus.NotFound], outcomes.Select(o => o.Status));
    }

    [Fact]
    public async Task Events_show_every_transition_of_a_job()
    {
        var job = await EnqueueThenLease();
        await Ack(AckRequest.Fail(job.Id, job.Lease!.Token, "first failure", retryIn: TimeSpan.FromSeconds(1)));
        Time.Advance(TimeSpan.FromSeconds(1));
        await MaintainAsync();
        var second = Assert.Single(await Lease());
        Time.Advance(TimeSpan.FromSeconds(1));
        await Ack(AckRequest.Complete(second.Id, second.Lease!.Token));
        var events = (await Store.JobEventsAsync(job.Id, None))!;
        Assert.Equal(
            [JobEventTypes.Created, JobEventTypes.Started, JobEventTypes.Failed, JobEventTypes.Started, JobEventTypes.Completed],
            events.Select(e => e.Type));
        Assert.Equal("first failure", events[2].Message);
        Assert.Equal(JobState.Scheduled, events[2].State);
        Assert.Equal(2, events[4].Attempt);
        Assert.Null(await Store.JobEventsAsync(424242424, None));
    }

    [Fact]
    public async Task Search_filters_by_queue_state_kind_and_tag_and_pages_newest_first()
    {
        var ids = new List<long>();
        for (var i = 0; i < 7; i++) ids.Add(await Enqueue(j => j with { Kind = i % 2 == 0 ? "even" : "odd", Tags = i < 3 ? ["early"] : [] }));
        var running = Assert.Single(await Lease());

        var page1 = await Store.JobSearchAsync(new JobQuery { Queue = Queue, Limit = 3 }, None);
        Assert.Equal(ids.AsEnumerable().Reverse().Take(3), page1.Jobs.Select(j => j.Id));
        var page2 = await Store.JobSearchAsync(new JobQuery { Queue = Queue, Limit = 3, BeforeId = page1.NextBeforeId }, None);
        Assert.Equal(ids.AsEnumerable().Reverse().Skip(3).Take(3), page2.Jobs.Select(j => j.Id));
        var page3 = await Store.JobSearchAsync(new JobQuery { Queue = Queue, Limit = 3, BeforeId = page2.NextBeforeId }, None);
        Assert.Single(page3.Jobs);
        Assert.Null(page3.NextBeforeId);

        Assert.Equal(4, (await Store.JobSearchAsync(new JobQuery { Queue = Queue, Kind = "even" }, None)).Jobs.Count);
        Assert.Equal(3, (await Store.JobSearchAsync(new JobQuery { Queue = Queue, Tag = "early" }, None)).Jobs.Count);
        Assert.Equal(running.Id, Assert.Single((await Store.JobSearchAsync(new JobQuery { Queue = Queue, State = JobState.Running }, None)).Jobs).Id);
        Assert.Equal(6, (await Store.JobSearchAsync(new JobQuery { Queue = Queue, State = JobState.Available }, None)).Jobs.Count);
        await Ack(AckRequest.Complete(running.Id, running.Lease!.Token));
        Assert.Equal(running.Id, Assert.Single((await Store.JobSearchAsync(new JobQuery { Queue = Queue, State = JobState.Completed }, None)).Jobs).Id);
    }

    [Fact]
    public async Task Queue_list_counts_jobs_per_state()
    {
        await Enqueue(j => j with { RunAt = Time.GetUtcNow().AddMinutes(5) });
        await Enqueue();
        await Enqueue();
        await Enqueue();
        var leased = await Lease(max: 2);
        await Ack(AckRequest.Complete(leased[0].Id, leased[0].Lease!.Token));
        await Ack(AckRequest.Fail(leased[1].Id, leased[1].Lease!.Token, "x", dead: true));
        var id = await Enqueue();
        await Store.JobCancelAsync(id, None);
        var counts = (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Counts;
        Assert.Equal(new StateCounts(Scheduled: 1, Available: 1, Running: 0, Completed: 1, Dead: 1, Cancelled: 1), counts);
    }

    [Fact]
    public async Task Everything_committed_survives_a_reopen()
    {
        var done = await EnqueueThenLease();
        await Ack(AckRequest.Complete(done.Id, done.Lease!.Token, "42"));
        var waiting = await Enqueue(j => j with { PartitionKey = "k" });
        var delayed = await Enqueue(j => j with { RunAt = Time.GetUtcNow().AddMinutes(1) });
        await Store.QueueSetPausedAsync(Queue + "p", true, None);

        Store = await ReopenAsync();
        Assert.Equal(JobState.Available, (await Get(waiting)).State);
        Assert.Equal(JobState.Scheduled, (await Get(delayed)).State);
        Assert.Equal("42", (await Get(done.Id)).ResultJson);
        Assert.True((await Store.QueueListAsync(None)).Single(q => q.Name == Queue + "p").Paused);
        var counts = (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Counts;
        Assert.Equal(new StateCounts(1, 1, 0, 1, 0, 0), counts);
        Assert.Equal(waiting, Assert.Single(await Lease(max: 10)).Id);
        var newer = await Enqueue();
        Assert.True(newer > delayed);
    }

    [Fact]
    public async Task A_job_running_at_a_restart_runs_again_afterwards()
    {
        var job = await EnqueueThenLease();
        Store = await ReopenAsync();
        if (LeasesSurviveRestart)
        {
            // The lease is still held, exclusively, until it expires; then the reaper counts the attempt as for any lapsed lease.
            var held = await Get(job.Id);
            Assert.Equal(JobState.Running, held.State);
            Assert.Equal(job.Lease!.Token, held.Lease!.Token);
            Assert.Equal(job.Lease.ExpiresAt, held.Lease.ExpiresAt);
            Assert.Empty(await Lease());
            Time.Advance(TimeSpan.FromSeconds(31));
            await MaintainAsync();
        }
        Assert.Equal(JobState.Available, (await Get(job.Id)).State);
        var again = Assert.Single(await Lease());
        Assert.Equal(job.Id, again.Id);
        Assert.NotEqual(job.Lease!.Token, again.Lease!.Token);
    }

    [Fact]
    public async Task Concurrent_workers_never_hold_the_same_job_while_its_lease_is_valid()
    {
        await Store.JobInsertManyAsync([.. Enumerable.Range(0, 2000).Select(i => new NewJob { Queue = Queue })], None);
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<long, int>();
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            while (true)
            {
                var jobs = await Store.JobLeaseAvailableAsync(new LeaseRequest(Queue, 7, TimeSpan.FromMinutes(5), TimeSpan.Zero, $"w{w}"), None);
                if (jobs.Count == 0) return;
                foreach (var job in jobs) Assert.True(seen.TryAdd(job.Id, w), $"job {job.Id} was leased twice");
                var outcomes = await Store.JobAckManyAsync([.. jobs.Select(j => AckRequest.Complete(j.Id, j.Lease!.Token))], None);
                Assert.All(outcomes, o => Assert.True(o.IsOk));
            }
        })).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2000, seen.Count);
        Assert.Equal(2000, (await Store.QueueListAsync(None)).Single(q => q.Name == Queue).Counts.Completed);
    }
}
