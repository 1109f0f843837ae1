using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Conveyor;

/// <summary>
/// The job metrics every store reports at the point it knows them, declared once (meter <c>Conveyor</c>).
/// With no listener attached the instruments cost next to nothing; the server's /metrics listens.
/// </summary>
public static class ConveyorMetrics
{
    public const string MeterName = "Conveyor";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Counter<long> Enqueued = Meter.CreateCounter<long>(
        "conveyor.jobs.enqueued", "{job}", "Jobs inserted (idempotent replays not counted).");
    private static readonly Counter<long> Completed = Meter.CreateCounter<long>(
        "conveyor.jobs.completed", "{job}", "Jobs completed successfully.");
    private static readonly Counter<long> Failed = Meter.CreateCounter<long>(
        "conveyor.jobs.failed", "{job}", "Failed attempts, including those that made the job dead.");
    private static readonly Counter<long> Dead = Meter.CreateCounter<long>(
        "conveyor.jobs.dead", "{job}", "Jobs that became dead (failed with no attempts left, or marked dead).");
    private static readonly Histogram<double> EnqueueToStart = Meter.CreateHistogram<double>(
        "conveyor.job.wait.duration", "s", "From when a job could run (run_at) to when a worker leased it.");
    private static readonly Histogram<double> LeaseToFinish = Meter.CreateHistogram<double>(
        "conveyor.job.run.duration", "s", "From lease to complete or fail of an attempt.");
    private static readonly Histogram<long> CommitBatch = Meter.CreateHistogram<long>(
        "conveyor.store.commit.batch_size", "{request}", "Write requests folded into one store transaction.");
    private static readonly Histogram<double> CommitDuration = Meter.CreateHistogram<double>(
        "conveyor.store.commit.duration", "s", "Time to apply and durably commit one store transaction.");

    private static readonly Histogram<double> Delivery = Meter.CreateHistogram<double>(
        "conveyor.delivery.duration", "s", "Push deliveries to one destination (webhook or RabbitMQ), by type and outcome (ok, failed).");

    public static void Delivered(string queue, string type, bool ok, double seconds) =>
        Delivery.Record(Math.Max(0, seconds), new TagList { { "queue", queue }, { "type", type }, { "outcome", ok ? "ok" : "failed" } });

    public static void JobEnqueued(string queue, string kind) =>
        Enqueued.Add(1, new TagList { { "queue", queue }, { "kind", kind } });

    public static void JobStarted(string queue, string kind, double waitSeconds) =>
        EnqueueToStart.Record(Math.Max(0, waitSeconds), new TagList { { "queue", queue }, { "kind", kind } });

    public static void JobFinishedAttempt(string queue, string kind, JobState outcome, double runSeconds)
    {
        var tags = new TagList { { "queue", queue }, { "kind", kind } };
        LeaseToFinish.Record(Math.Max(0, runSeconds), tags);
        if (outcome == JobState.Completed)
        {
            Completed.Add(1, tags);
            return;
        }
        Failed.Add(1, tags);
        if (outcome == JobState.Dead) Dead.Add(1, tags);
    }

    public static void JobDead(string queue, string kind) => Dead.Add(1, new TagList { { "queue", queue }, { "kind", kind } });

    public static void StoreCommitted(string store, int requests, double seconds)
    {
        var tags = new TagList { { "store", store } };
        CommitBatch.Record(requests, tags);
        CommitDuration.Record(seconds, tags);
    }
}
