namespace Conveyor.Server.Submissions;

/// <summary>
/// Wakes reservations waiting for chunks (long-poll and WebSocket reserves) when chunks may have become ready in this
/// process: a new submission, a retry, a release. Other servers on the same PostgreSQL are not heard, so waiters also
/// look again every <see cref="Recheck"/>.
/// </summary>
internal sealed class ChunkSignal
{
    public static readonly TimeSpan Recheck = TimeSpan.FromMilliseconds(250);

    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Pulse() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Completes on the next pulse, after <see cref="Recheck"/> at most, or when cancelled (without throwing).</summary>
    public async Task WaitAsync(TimeSpan max, CancellationToken cancellationToken)
    {
        var pulse = Volatile.Read(ref _next).Task;
        var timeout = max < Recheck ? max : Recheck;
        try
        {
            await pulse.WaitAsync(timeout, cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException) { }
    }
}
