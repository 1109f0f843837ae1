using System.Globalization;

namespace Conveyor.Client;

/// <summary>
/// Thrown by a handler to run the job again after <see cref="Delay"/> instead of the server's backoff. The attempt
/// counts, so a job snoozed on its last attempt is dead.
/// </summary>
public sealed class JobSnoozeException : Exception
{
    public JobSnoozeException(TimeSpan delay)
        : base($"snoozed for {delay.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        Delay = delay;
    }

    public TimeSpan Delay { get; }
}

/// <summary>
/// Thrown by a handler when retrying cannot help (bad input, a refused card): the job is dead at once with this
/// exception's message as its error.
/// </summary>
public sealed class JobFailedPermanentlyException : Exception
{
    public JobFailedPermanentlyException()
        : base("the handler failed the job permanently")
    {
    }

    public JobFailedPermanentlyException(string message)
        : base(message)
    {
    }

    public JobFailedPermanentlyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
