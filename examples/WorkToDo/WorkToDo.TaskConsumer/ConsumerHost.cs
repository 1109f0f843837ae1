using Conveyor.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using WorkToDo.Core;

namespace WorkToDo.TaskConsumer;

/// <summary>
/// The consumer as a generic host running Conveyor's worker host on one queue with two handlers, one per job kind:
/// <c>work.compute</c> (enqueued by the API for a work it created) and <c>work.demand</c> (a producer's RabbitMQ message,
/// ingested by the Conveyor server). The program runs it; the end-to-end test starts it in process.
/// </summary>
public static class ConsumerHost
{
    public static async Task<IHost> BuildAsync(ConsumerSettings settings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        if (settings.ConsoleLogs) builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.UseUtcTimestamp = true; });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning); // IHttpClientFactory logs every request at Information
        builder.Services.AddSingleton(NpgsqlDataSource.Create(settings.Postgres));
        builder.Services.AddSingleton(sp => new WorkStore(sp.GetRequiredService<NpgsqlDataSource>(), settings.Schema));
        builder.Services.AddConveyor(o =>
        {
            o.BaseAddress = settings.Conveyor;
            o.ApiKey = settings.ConveyorApiKey;
        });
        builder.Services.AddConveyorWorker(o =>
            {
                // Computing is quick; the timeout only catches a database that hangs.
                o.Queue(settings.Queue, concurrency: settings.Concurrency, timeout: TimeSpan.FromSeconds(60));
                o.PollWait = settings.PollWait;
                o.ShutdownGracePeriod = TimeSpan.FromSeconds(10);
            })
            .AddHandler<ComputeWork, ComputeOutcome, ComputeWorkHandler>(
                settings.Queue, WorkNames.ComputeKind, WorkJson.Default.ComputeWork, WorkJson.Default.ComputeOutcome)
            .AddHandler<WorkDemand, ComputeOutcome, WorkDemandHandler>(
                settings.Queue, WorkNames.DemandKind, WorkJson.Default.WorkDemand, WorkJson.Default.ComputeOutcome);

        var host = builder.Build();
        await host.Services.GetRequiredService<WorkStore>().ApplySchemaAsync(cancellationToken);
        return host;
    }
}

/// <summary>A work the API created: compute it (idempotent, so a redelivered job changes nothing).</summary>
internal sealed partial class ComputeWorkHandler(WorkStore store, ILogger<ComputeWorkHandler> logger) : IJobHandler<ComputeWork, ComputeOutcome>
{
    public async Task<ComputeOutcome> HandleAsync(ComputeWork payload, JobContext context, CancellationToken cancellationToken)
    {
        // The API commits the row before it enqueues, so a missing row was deleted: retrying cannot bring it back.
        var work = await store.ComputeAsync(payload.WorkId, cancellationToken)
            ?? throw new JobFailedPermanentlyException($"Work {payload.WorkId} does not exist (deleted after it was queued?).");
        LogComputed(logger, work.Id, work.WorkCode, work.AddUpTo, work.Result!.Value, context.Id);
        return new ComputeOutcome(work.Id, work.WorkCode, work.Result.Value);
    }

    [LoggerMessage(1, LogLevel.Information, "work {WorkId} ({WorkCode}): 1..{AddUpTo} = {Result} (job {JobId})")]
    internal static partial void LogComputed(ILogger logger, long workId, string workCode, int addUpTo, long result, long jobId);
}

/// <summary>
/// A demand from RabbitMQ: create its <c>consumer-</c> work, then compute it. The work code derives from the message's
/// id (the job's idempotency key), so a redelivery finds the work it already created.
/// </summary>
internal sealed class WorkDemandHandler(WorkStore store, ILogger<WorkDemandHandler> logger) : IJobHandler<WorkDemand, ComputeOutcome>
{
    public async Task<ComputeOutcome> HandleAsync(WorkDemand payload, JobContext context, CancellationToken cancellationToken)
    {
        if (payload.AddUpTo is < Arithmetic.MinAddUpTo or > Arithmetic.MaxAddUpTo)
            throw new JobFailedPermanentlyException($"add_up_to must be from {Arithmetic.MinAddUpTo} to {Arithmetic.MaxAddUpTo}, not {payload.AddUpTo}.");
        if (payload.Done) throw new JobFailedPermanentlyException("A demand must arrive with done = false: there is nothing to do for a done one.");
        var code = WorkCodes.ForDemand(context.Job.IdempotencyKey ?? $"job:{context.Id}");
        var created = await store.CreateOrGetAsync(code, payload.AddUpTo, cancellationToken);
        var work = await store.ComputeAsync(created.Id, cancellationToken)
            ?? throw new InvalidOperationException($"Work {created.Id} ({code}) vanished before it was computed; the job retries.");
        ComputeWorkHandler.LogComputed(logger, work.Id, work.WorkCode, work.AddUpTo, work.Result!.Value, context.Id);
        return new ComputeOutcome(work.Id, work.WorkCode, work.Result.Value);
    }
}
