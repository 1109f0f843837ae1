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

    /// <summary>
    /// How long to sleep until <paramref name="at"/>: rounded up to a whole millisecond past it (a timer then never fires
    /// before it), and kept within <paramref name="least"/> and <paramref name="most"/>.
    /// </summary>
    public static TimeSpan Until(DateTimeOffset at, DateTimeOffset now, TimeSpan least, TimeSpan most)
    {
        var wait = TimeSpan.FromMilliseconds(Math.Ceiling((at - now).TotalMilliseconds) + 1);
        return wait < least ? least : wait > most ? most : wait;
    }

    private static TaskCompletionSource New() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
