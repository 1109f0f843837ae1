using Conveyor.Server.Http;
using Conveyor.Server.Security;

namespace Conveyor.Server.Dashboard;

/// <summary>The routes the dashboard needs beyond the job API: throughput history and bulk retry of dead jobs.</summary>
internal static class DashboardApi
{
    /// <summary>Dead jobs retried at once: enough for group commit to share one transaction, few enough not to flood a pool.</summary>
    private const int RetryWave = 64;

    public static void Map(IEndpointRouteBuilder app, StatsHistory history)
    {
        var v1 = app.MapGroup("/v1")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        v1.MapGet("/stats/history", (long? since) => History(history, since)).Requires(Access.Read)
            .WithName("getStatsHistory")
            .WithTags("queues")
            .WithSummary("Jobs enqueued, completed and failed per second over the last 15 minutes, with queue depth")
            .WithDescription("One sample a second, oldest first, at most 900. Pass `since` (Unix milliseconds, the `at_ms` of the last sample you have) to get only newer ones.")
            .Produces<StatsHistoryResponse>(200);
        v1.MapPost("/queues/{queue}/retry-dead", RetryDead).Requires(Access.Admin)
            .WithName("retryDeadJobs")
            .WithTags("queues")
            .WithSummary("Make every dead job of a queue available again; returns how many were retried")
            .Produces<RetryDeadResponse>(200)
            .ProducesProblem(400);
    }

    private static IResult History(StatsHistory history, long? since)
    {
        var samples = history.Snapshot(since);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("interval_ms", (long)StatsSampler.Interval.TotalMilliseconds);
            w.WriteNumber("capacity", history.Capacity);
            w.WriteStartArray("samples");
            foreach (var s in samples)
            {
                w.WriteStartObject();
                w.WriteNumber("at_ms", s.At.ToUnixTimeMilliseconds());
                w.WriteNumber("enqueued", s.Enqueued);
                w.WriteNumber("completed", s.Completed);
                w.WriteNumber("failed", s.Failed);
                w.WriteNumber("scheduled", s.Scheduled);
                w.WriteNumber("available", s.Available);
                w.WriteNumber("running", s.Running);
                w.WriteNumber("dead", s.Dead);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    /// <summary>
    /// Pages through the queue's dead jobs newest first (keyset on id, so retried jobs never come round again) and retries
    /// each through the store's ordinary retry. A job that changed state meanwhile (retried by someone else) is skipped.
    /// </summary>
    private static async Task<IResult> RetryDead(string queue, IJobStore store, CancellationToken ct)
    {
        if (JobRequests.CheckQueue(queue) is { } bad) return Problems.BadRequest(bad);
        long retried = 0;
        long? before = null;
        var wave = new List<Task<JobOutcome>>(RetryWave);
        do
        {
            var page = await store.JobSearchAsync(
                new JobQuery { Queue = queue, State = JobState.Dead, BeforeId = before, Limit = JobLimits.MaxSearchLimit }, ct);
            foreach (var chunk in page.Jobs.Chunk(RetryWave))
            {
                wave.Clear();
                foreach (var job in chunk) wave.Add(store.JobRetryAsync(job.Id, ct).AsTask());
                foreach (var outcome in await Task.WhenAll(wave))
                {
                    if (outcome.IsOk) retried++;
                }
            }
            before = page.NextBeforeId;
        }
        while (before is not null);
        return new JsonWriterResult(200, w =>
        {
            w.WriteStartObject();
            w.WriteString("queue", queue);
            w.WriteNumber("retried", retried);
            w.WriteEndObject();
        });
    }
}

// Shapes for the OpenAPI document; the answers are written above with a Utf8JsonWriter.

internal sealed record StatsHistoryResponse(int IntervalMs, int Capacity, IReadOnlyList<StatsSampleResponse> Samples);

internal sealed record StatsSampleResponse(
    long AtMs, long Enqueued, long Completed, long Failed, long Scheduled, long Available, long Running, long Dead);

internal sealed record RetryDeadResponse(string Queue, long Retried);
