using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace Conveyor.Amqp;

/// <summary>
/// Publishes the reply of each RPC job (one ingested from a message with <c>reply_to</c> and <c>correlation_id</c>)
/// once the job completes, dies or is cancelled. Each pending job is one async wait on
/// <see cref="IJobStore.JobWaitFinishedAsync"/>, renewed every <see cref="WaitSlice"/>: no thread is held however long
/// the job takes. Replies are published with confirms and retried while the broker is away.
/// </summary>
internal sealed class RpcReplier(IJobStore store, AmqpPublisher publisher, ILogger logger, TimeSpan retryInterval)
{
    private static readonly TimeSpan WaitSlice = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<Task, byte> _pending = new();
    private readonly CancellationTokenSource _stopping = new();

    public int PendingCount => _pending.Count;

    public void Track(long jobId, ReplyRoute route)
    {
        var task = WaitAndReplyAsync(jobId, route, _stopping.Token);
        _pending.TryAdd(task, 0);
        _ = task.ContinueWith(t => _pending.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Finds RPC jobs still owed a reply (after a restart: their reply route is in their tags) and waits for them again.</summary>
    public async Task ResumeAsync(CancellationToken cancellationToken)
    {
        var count = 0;
        foreach (var state in new[] { JobState.Scheduled, JobState.Available, JobState.Running })
        {
            long? before = null;
            do
            {
                var page = await store.JobSearchAsync(
                    new JobQuery { Tag = MessageMapper.RpcTag, State = state, BeforeId = before, Limit = JobLimits.MaxSearchLimit },
                    cancellationToken).ConfigureAwait(false);
                foreach (var job in page.Jobs)
                {
                    if (MessageMapper.ReplyRouteOf(job.Tags) is { } route)
                    {
                        Track(job.Id, route);
                        count++;
                    }
                }
                before = page.NextBeforeId;
            }
            while (before is not null);
        }
        if (count > 0) AmqpLog.RpcResumed(logger, count);
    }

    private async Task WaitAndReplyAsync(long jobId, ReplyRoute route, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Yield();
            Job? job;
            do
            {
                job = await store.JobWaitFinishedAsync(jobId, WaitSlice, cancellationToken).ConfigureAwait(false);
                if (job is null) return; // deleted: nobody is owed anything
            }
            while (!job.State.IsFinished());

            var (properties, body) = Reply(job, route.CorrelationId);
            while (true)
            {
                try
                {
                    // The default exchange routes by queue name: reply_to names the caller's queue (or amq.rabbitmq.reply-to.*).
                    await publisher.PublishAsync("", route.ReplyTo, properties, body, mandatory: true, cancellationToken).ConfigureAwait(false);
                    AmqpMetrics.Replies.Add(1);
                    return;
                }
                catch (AmqpException e) when (e.IsTransient)
                {
                    await Task.Delay(retryInterval, cancellationToken).ConfigureAwait(false);
                }
                catch (AmqpException e)
                {
                    // Unroutable: the caller's reply queue is gone (it gave up or disconnected). Nobody can take the reply.
                    AmqpLog.ReplyFailed(logger, jobId, route.ReplyTo, route.CorrelationId, e.Message);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: the job keeps its reply route in its tags; the next start resumes the wait.
        }
        catch (Exception e) when (e is StoreUnavailableException or ObjectDisposedException)
        {
            AmqpLog.ReplyFailed(logger, jobId, route.ReplyTo, route.CorrelationId, e.Message);
        }
    }

    /// <summary>The reply of a finished job: its result, or <c>{"error": …}</c> with <c>x-conveyor-status: error</c>.</summary>
    internal static (BasicProperties Properties, byte[] Body) Reply(Job job, string correlationId)
    {
        var ok = job.State == JobState.Completed;
        var properties = new BasicProperties
        {
            CorrelationId = correlationId,
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
            Headers = new Dictionary<string, object?>
            {
                [AmqpHeaders.Status] = ok ? AmqpHeaders.StatusOk : AmqpHeaders.StatusError,
                [AmqpHeaders.JobId] = job.Id,
                [AmqpHeaders.State] = job.State.ToWire(),
            },
        };
        if (ok) return (properties, Encoding.UTF8.GetBytes(job.ResultJson ?? "null"));
        var error = job.State == JobState.Cancelled ? $"Job {job.Id} was cancelled." : LastError(job.ErrorsJson) ?? $"Job {job.Id} is dead.";
        return (properties, JsonSerializer.SerializeToUtf8Bytes(new ErrorReply(error, job.State.ToWire(), job.Id), AmqpJson.Default.ErrorReply));
    }

    private static string? LastError(string? errorsJson)
    {
        if (errorsJson is null) return null;
        try
        {
            using var doc = JsonDocument.Parse(errorsJson);
            var errors = doc.RootElement;
            if (errors.ValueKind != JsonValueKind.Array || errors.GetArrayLength() == 0) return null;
            return errors[errors.GetArrayLength() - 1].TryGetProperty("message", out var message) ? message.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Ends every wait (their jobs keep their routes for the next start).</summary>
    public async Task StopAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_pending.Keys).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
