using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace Conveyor.Client;

/// <summary>The job a handler is running: its identity, attempt, raw payload, and the per-job DI scope.</summary>
public sealed class JobContext
{
    internal JobContext(JobInfo job, IServiceProvider services, CancellationToken cancellationToken)
    {
        Job = job;
        Services = services;
        CancellationToken = cancellationToken;
    }

    /// <summary>The job as it was leased (state <c>running</c>, with its lease).</summary>
    public JobInfo Job { get; }

    public long Id => Job.Id;

    public string Queue => Job.Queue;

    public string Kind => Job.Kind;

    /// <summary>1 for the first run, counting every lease of this job.</summary>
    public int Attempt => Job.Attempt;

    public int MaxAttempts => Job.MaxAttempts;

    /// <summary>True when a failure now makes the job dead.</summary>
    public bool IsLastAttempt => Job.Attempt >= Job.MaxAttempts;

    /// <summary>The payload as sent, before it was read as the handler's payload type.</summary>
    public JsonElement? RawPayload => Job.Payload;

    /// <summary>The DI scope created for this job; disposed when the handler returns.</summary>
    public IServiceProvider Services { get; }

    /// <summary>The same token the handler receives: timeout, lease lost, or shutdown.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Ends this attempt and runs the job again after <paramref name="delay"/> (the attempt still counts).</summary>
    [DoesNotReturn]
    public void Snooze(TimeSpan delay) => throw new JobSnoozeException(delay);

    /// <summary>Makes the job dead now, with <paramref name="message"/> as its error: no further attempts.</summary>
    [DoesNotReturn]
    public void FailPermanently(string message) => throw new JobFailedPermanentlyException(message);
}
