namespace Conveyor.Client;

/// <summary>
/// Handles jobs whose payload is a <typeparamref name="TPayload"/>; the job completes with a <c>null</c> result when
/// <see cref="HandleAsync"/> returns. Resolved from a fresh DI scope for every job, so scoped services (a DbContext)
/// are safe to inject. See <see cref="IJobHandler{TPayload, TResult}"/> for what throwing does.
/// </summary>
public interface IJobHandler<in TPayload>
{
    Task HandleAsync(TPayload payload, JobContext context, CancellationToken cancellationToken);
}

/// <summary>
/// Handles jobs whose payload is a <typeparamref name="TPayload"/> and answers with a <typeparamref name="TResult"/>.
/// Resolved from a fresh DI scope for every job.
/// </summary>
/// <remarks>
/// <para>How the outcome is reported to the server:</para>
/// <list type="bullet">
/// <item>return a value: the job is <c>completed</c> with the value serialized as its result (what RPC callers get);</item>
/// <item>throw any exception: the attempt fails with the exception's message as the error and
/// <see cref="Exception.ToString"/> as the stack. The server retries it while attempts remain
/// (<c>max_attempts</c>, default 25) after a backoff of <c>min(1 s × 2^(attempt−1), 1 h)</c> multiplied by a random
/// factor in [0.8, 1.2] (so 1 s, 2 s, 4 s, … ± 20 %), then the job is <c>dead</c>;</item>
/// <item>throw <see cref="JobSnoozeException"/> (or call <see cref="JobContext.Snooze"/>): the attempt fails and the job
/// runs again after exactly the given delay instead of the backoff (it still counts an attempt);</item>
/// <item>throw <see cref="JobFailedPermanentlyException"/> (or call <see cref="JobContext.FailPermanently"/>): the job is
/// <c>dead</c> at once, whatever attempts remain;</item>
/// <item>run past the queue's <see cref="ConveyorQueueOptions.Timeout"/>: the handler's <c>cancellationToken</c> is
/// cancelled and the attempt fails as timed out (retried like any failure), even if the handler ignores the token.</item>
/// </list>
/// <para>the handler's <c>cancellationToken</c> also fires when the lease is lost (the job was cancelled, or a heartbeat was
/// refused) and when the worker's shutdown grace period is over (the job is then released, not failed).</para>
/// </remarks>
public interface IJobHandler<in TPayload, TResult>
{
    Task<TResult> HandleAsync(TPayload payload, JobContext context, CancellationToken cancellationToken);
}
