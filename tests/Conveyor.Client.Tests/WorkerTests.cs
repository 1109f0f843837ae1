using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Conveyor.Client.Tests;

/// <summary>
/// The worker host against a real server. Every wait is on a signal (a TaskCompletionSource or the server's result
/// long poll) with a bound; handlers that "work for a while" do so with Task.Delay, never as synchronization.
/// </summary>
public sealed class WorkerTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private ConveyorClient Client => server.Client;

    [Fact]
    public async Task Typed_handler_from_a_per_job_scope_answers_rpc_with_its_return_value()
    {
        var queue = ServerFixture.UniqueQueue("rpc");
        using var host = server.Worker(
            o => o.Queue(queue, concurrency: 4),
            w => w.AddHandler<Order, Quote, QuoteHandler>(queue, payloadTypeInfo: TestJson.Default.Order, resultTypeInfo: TestJson.Default.Quote),
            s => s.AddScoped<ScopeProbe>().AddSingleton<ScopeLog>());
        await host.StartAsync(Limits.Token);

        var first = await Client.EnqueueAndWaitAsync<Order, Quote>(
            queue, new Order("ada", 3, 2.5m), Limits.Wait, requestTypeInfo: TestJson.Default.Order, resultTypeInfo: TestJson.Default.Quote);
        var second = await Client.EnqueueAndWaitAsync<Order, Quote>(
            queue, new Order("bob", 2, 1m), Limits.Wait, requestTypeInfo: TestJson.Default.Order, resultTypeInfo: TestJson.Default.Quote);

        Assert.Equal(new Quote("ada", 7.5m), first);
        Assert.Equal(new Quote("bob", 2m), second);
        var log = host.Services.GetRequiredService<ScopeLog>();
        Assert.Equal(2, log.Scopes.Distinct().Count());
        Assert.Equal(2, log.Disposed);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task A_handler_that_fails_permanently_makes_rpc_throw_with_the_handlers_message()
    {
        var queue = ServerFixture.UniqueQueue("rpc-fail");
        using var host = server.Worker(
            o => o.Queue(queue),
            w => w.AddHandler<Order, Quote>(queue, (order, _, _) =>
                throw new JobFailedPermanentlyException($"no price list for {order.Customer}")));
        await host.StartAsync(Limits.Token);

        var error = await Assert.ThrowsAsync<JobFailedException>(() =>
            Client.EnqueueAndWaitAsync<Order, Quote>(queue, new Order("zed", 1, 1), Limits.Wait));

        Assert.Contains("no price list for zed", error.Message);
        Assert.Equal(("dead", 1), (error.Job.State, error.Job.Attempt));
        Assert.Contains("JobFailedPermanentlyException", Assert.Single(error.Job.Errors!).Stack);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task A_throwing_handler_is_retried_after_the_servers_backoff_and_its_error_and_stack_are_kept()
    {
        var queue = ServerFixture.UniqueQueue("retry");
        var attempts = new ConcurrentQueue<int>();
        using var host = server.Worker(
            o => o.Queue(queue),
            w => w.AddHandler<Order, string>(queue, (order, job, _) =>
            {
                attempts.Enqueue(job.Attempt);
                return job.Attempt == 1 ? throw new InvalidOperationException("first attempt fails") : Task.FromResult("ok");
            }));
        await host.StartAsync(Limits.Token);

        var (enqueued, _) = await Client.EnqueueAsync(queue, new Order("a", 1, 1));
        var done = await Client.WaitForResultAsync(enqueued.Id, Limits.Wait);

        // Attempt 1's backoff is 1 s ± 20 %: the second run came after it, not at once.
        Assert.Equal([1, 2], attempts);
        Assert.Equal(("completed", 2, "\"ok\""), (done.State, done.Attempt, done.Result?.GetRawText()));
        var error = Assert.Single(done.Errors!);
        Assert.Equal("first attempt fails", error.Message);
        Assert.Contains("System.InvalidOperationException: first attempt fails", error.Stack);
        Assert.Contains(" at ", error.Stack);
        var events = await Client.GetEventsAsync(enqueued.Id);
        var failedAt = events.Single(e => e.Type == "failed").At;
        Assert.True(done.StartedAt - failedAt >= TimeSpan.FromMilliseconds(700), $"retried {done.StartedAt - failedAt} after the failure");
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task Snooze_runs_the_job_again_after_the_given_delay_and_counts_the_attempt()
    {
        var queue = ServerFixture.UniqueQueue("snooze");
        using var host = server.Worker(
            o => o.Queue(queue),
            w => w.AddHandler<int, int>(queue, (n, job, _) =>
            {
                if (job.Attempt < 3)
                {
                    job.Snooze(TimeSpan.FromMilliseconds(50));
                }

                return Task.FromResult(n * 2);
            }));
        await host.StartAsync(Limits.Token);

        var result = await Client.EnqueueAndWaitAsync<int, int>(queue, 21, Limits.Wait);

        Assert.Equal(42, result);
        var job = (await Client.SearchJobsAsync(new JobSearch { Queue = queue })).Jobs.Single();
        Assert.Equal(3, job.Attempt);
        Assert.Equal(["snoozed for 50 ms", "snoozed for 50 ms"], job.Errors!.Select(e => e.Message));
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task A_handler_past_its_timeout_fails_the_job_even_if_it_ignores_its_token_and_other_jobs_carry_on()
    {
        var queue = ServerFixture.UniqueQueue("timeout");
        var never = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var politeCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = server.Worker(
            o => o.Queue(queue, concurrency: 4, timeout: TimeSpan.FromMilliseconds(300)),
            w => w.AddHandler<string, string>(queue, async (mode, _, ct) =>
            {
                switch (mode)
                {
                    case "hang":
                        return await never.Task; // ignores its token
                    case "polite":
                        ct.Register(() => politeCancelled.TrySetResult());
                        await Task.Delay(Timeout.Infinite, ct);
                        return "unreachable";
                    default:
                        return mode;
                }
            }));
        await host.StartAsync(Limits.Token);

        var hang = (await Client.EnqueueAsync(queue, "hang", new JobOptions { MaxAttempts = 1 })).Job.Id;
        var polite = (await Client.EnqueueAsync(queue, "polite", new JobOptions { MaxAttempts = 1 })).Job.Id;
        var fine = await Client.EnqueueAndWaitAsync<string, string>(queue, "fine", Limits.Wait);

        Assert.Equal("fine", fine);
        foreach (var id in new[] { hang, polite })
        {
            var error = await Assert.ThrowsAsync<JobFailedException>(() => Client.WaitForResultAsync(id, Limits.Wait));
            Assert.Contains("timed out after 00:00:00.3000000", Assert.Single(error.Job.Errors!).Message);
        }

        await politeCancelled.Within();
        Assert.Equal("after", await Client.EnqueueAndWaitAsync<string, string>(queue, "after", Limits.Wait));
        never.SetResult("too late");
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task A_handler_that_crashes_its_task_fails_only_its_own_job()
    {
        var queue = ServerFixture.UniqueQueue("crash");
        using var host = server.Worker(
            o => o.Queue(queue, concurrency: 2),
            w => w.AddHandler<string>(queue, (mode, _, _) => mode switch
            {
                "sync-throw" => throw new FormatException("thrown before any task existed"),
                "null-task" => null!,
                "faulted" => Task.FromException(new AccessViolationException("faulted task")),
                _ => Task.CompletedTask,
            }));
        await host.StartAsync(Limits.Token);

        var ids = new Dictionary<string, long>();
        foreach (var mode in new[] { "sync-throw", "null-task", "faulted", "ok" })
        {
            ids[mode] = (await Client.EnqueueAsync(queue, mode, new JobOptions { MaxAttempts = 1 })).Job.Id;
        }

        Assert.Equal("completed", (await Client.WaitForResultAsync(ids["ok"], Limits.Wait)).State);
        foreach (var (mode, expected) in new[]
        {
            ("sync-throw", "thrown before any task existed"),
            ("null-task", "the handler delegate returned a null Task; return Task.CompletedTask or a result"),
            ("faulted", "faulted task"),
        })
        {
            var error = await Assert.ThrowsAsync<JobFailedException>(() => Client.WaitForResultAsync(ids[mode], Limits.Wait));
            Assert.Equal(expected, Assert.Single(error.Job.Errors!).Message);
        }

        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task No_more_handlers_run_at_once_than_the_queues_concurrency()
    {
        const int Concurrency = 3;
        var queue = ServerFixture.UniqueQueue("bound");
        var running = 0;
        var most = 0;
        var full = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = server.Worker(
            o => o.Queue(queue, concurrency: Concurrency, prefetch: 2),
            w => w.AddHandler<int>(queue, async (_, _, _) =>
            {
                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref most, now);
                if (now == Concurrency)
                {
                    full.TrySetResult();
                }

                await gate.Task;
                Interlocked.Decrement(ref running);
            }));
        var batch = await Client.EnqueueManyAsync(queue, Enumerable.Range(0, 12));
        await host.StartAsync(Limits.Token);

        await full.Within();

        // Everything the worker may hold is leased now (3 running + 2 prefetched); none beyond the bound started.
        var counts = (await Client.ListQueuesAsync()).Single(q => q.Name == queue).Counts;
        Assert.Equal(Concurrency, Volatile.Read(ref running));
        Assert.True(counts.Running <= Concurrency + 2, $"{counts.Running} leased");
        gate.SetResult();
        foreach (var job in batch.Jobs)
        {
            await Client.WaitForResultAsync(job.Id, Limits.Wait);
        }

        Assert.Equal(Concurrency, most);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task Heartbeats_keep_a_long_jobs_short_lease_so_it_completes_once()
    {
        var queue = ServerFixture.UniqueQueue("heartbeat");
        var runs = 0;
        using var host = server.Worker(
            // Beats every 750 ms: a loaded machine may stall the worker for up to 2 s without the lease running out.
            o => o.Queue(queue, concurrency: 2, leaseDuration: TimeSpan.FromSeconds(3)),
            w => w.AddHandler<int, int>(queue, async (n, _, ct) =>
            {
                Interlocked.Increment(ref runs);
                await Task.Delay(TimeSpan.FromMilliseconds(7500), ct); // the work: 2.5 leases long
                return n + 1;
            }));
        await host.StartAsync(Limits.Token);

        var result = await Client.EnqueueAndWaitAsync<int, int>(queue, 1, Limits.Wait);

        Assert.Equal(2, result);
        Assert.Equal(1, runs);
        var job = (await Client.SearchJobsAsync(new JobSearch { Queue = queue })).Jobs.Single();
        Assert.Equal(("completed", 1), (job.State, job.Attempt));
        Assert.DoesNotContain(await Client.GetEventsAsync(job.Id), e => e.Type == "lease_expired");
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task Cancelling_a_running_job_cancels_its_handlers_token_through_the_refused_heartbeat()
    {
        var queue = ServerFixture.UniqueQueue("cancel");
        var started = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var tokenFired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = server.Worker(
            o => o.Queue(queue, leaseDuration: TimeSpan.FromSeconds(1)),
            w => w.AddHandler<int>(queue, async (_, job, ct) =>
            {
                ct.Register(() => tokenFired.TrySetResult());
                started.TrySetResult(job.Id);
                await Task.Delay(Timeout.Infinite, ct);
            }));
        await host.StartAsync(Limits.Token);
        await Client.EnqueueAsync(queue, 1);

        var id = await started.Task.WaitAsync(Limits.Wait);
        await Client.CancelAsync(id);

        await tokenFired.Within();
        Assert.Equal("cancelled", (await Client.GetJobAsync(id)).State);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task Stopping_mid_run_finishes_running_handlers_and_releases_the_rest_so_no_job_is_lost_or_stuck()
    {
        var queue = ServerFixture.UniqueQueue("shutdown");
        var handled = new ConcurrentBag<int>();
        var twoRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        using var host = server.Worker(
            o => o.Queue(queue, concurrency: 2, prefetch: 4),
            w => w.AddHandler<int>(queue, async (n, _, _) =>
            {
                if (Interlocked.Increment(ref started) == 2)
                {
                    twoRunning.TrySetResult();
                }

                await Task.Delay(300, CancellationToken.None); // the work, well inside the grace period
                handled.Add(n);
            }));
        await Client.EnqueueManyAsync(queue, Enumerable.Range(0, 30));
        await host.StartAsync(Limits.Token);
        await twoRunning.Within();

        await host.StopAsync(Limits.Token);

        var jobs = await AllJobs(queue);
        Assert.Equal(30, jobs.Count);
        Assert.DoesNotContain(jobs, j => j.State is not ("completed" or "available"));
        var completed = jobs.Where(j => j.State == "completed").Select(j => j.Payload!.Value.GetInt32()).Order();
        Assert.Equal(handled.Order(), completed);
        Assert.NotEmpty(handled);
        Assert.All(jobs.Where(j => j.State == "available"), j => Assert.Empty(j.Errors ?? []));
    }

    [Fact]
    public async Task A_handler_still_running_when_the_grace_period_ends_is_cancelled_and_its_job_released()
    {
        var queue = ServerFixture.UniqueQueue("grace");
        var started = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = server.Worker(
            o =>
            {
                o.Queue(queue);
                o.ShutdownGracePeriod = TimeSpan.FromMilliseconds(200);
            },
            w => w.AddHandler<int>(queue, async (_, job, ct) =>
            {
                ct.Register(() => cancelled.TrySetResult());
                started.TrySetResult(job.Id);
                await Task.Delay(Timeout.Infinite, ct);
            }));
        await host.StartAsync(Limits.Token);
        await Client.EnqueueAsync(queue, 1);
        var id = await started.Task.WaitAsync(Limits.Wait);

        await host.StopAsync(Limits.Token);

        await cancelled.Within();
        var job = await Client.GetJobAsync(id);
        Assert.Equal("available", job.State);
        Assert.Empty(job.Errors ?? []);
    }

    [Fact]
    public async Task A_declared_queue_without_a_handler_fails_the_start_with_a_sentence()
    {
        using var host = server.Worker(o => o.Queue("lonely"), _ => { });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(Limits.Token));

        Assert.Contains("Queue 'lonely' is declared for the Conveyor worker but has no handler", error.Message);
    }

    private async Task<List<JobInfo>> AllJobs(string queue)
    {
        var jobs = new List<JobInfo>();
        string? cursor = null;
        do
        {
            var page = await Client.SearchJobsAsync(new JobSearch { Queue = queue }, cursor, 500);
            jobs.AddRange(page.Jobs);
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        return jobs;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    public sealed class ScopeLog
    {
        public ConcurrentBag<Guid> Scopes { get; } = [];

        public int Disposed;
    }

    public sealed class ScopeProbe(ScopeLog log) : IDisposable
    {
        public Guid Id { get; } = Guid.NewGuid();

        public void Dispose() => Interlocked.Increment(ref log.Disposed);
    }

    public sealed class QuoteHandler(ScopeProbe probe, ScopeLog log) : IJobHandler<Order, Quote>
    {
        public Task<Quote> HandleAsync(Order payload, JobContext context, CancellationToken cancellationToken)
        {
            log.Scopes.Add(probe.Id);
            Assert.Same(probe, context.Services.GetRequiredService<ScopeProbe>());
            return Task.FromResult(new Quote(payload.Customer, payload.Quantity * payload.Price));
        }
    }
}
