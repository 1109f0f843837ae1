namespace Conveyor.Server;

/// <summary>
/// A background loop's sleep that a wake-up cuts short. The loop arms it before it reads the state it plans from, so a
/// change made after that read (and its <see cref="Wake"/>) ends the sleep that follows at once.
/// </summary>
internal sealed class WakeSignal
{
    private TaskCompletionSource _signal = New();

    public void Arm() => Volatile.Write(ref _signal, New());

    public void Wake() => Volatile.Read(ref _signal).TrySetResult();

    /// <summary>Sleeps for <paramref name="wait"/> on <paramref name="time"/>'s clock, or until woken or stopped.</summary>
    public async Task SleepAsync(TimeSpan wait, TimeProvider time, CancellationToken stoppingToken)
    {
        using var sleeping = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        try
        {
            await Task.WhenAny(Volatile.Read(ref _signal).Task, Task.Delay(wait, time, sleeping.Token));
        }
        finally
        {
            await sleeping.CancelAsync();
        }
    }

    private static TaskCompletionSource New() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
