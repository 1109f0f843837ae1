using System.Text.Json;

namespace Conveyor.Client.Internal;

/// <summary>A job this worker holds a lease on: from the lease answer until the server has its outcome.</summary>
internal sealed class HeldJob(JobInfo job, long leaseExpiresAt)
{
    private int _settled;

    public JobInfo Job { get; } = job;

    public long Id => Job.Id;

    public string Token { get; } = job.Lease?.Token ?? "";

    /// <summary>Local timestamp (TimeProvider ticks) by which the lease runs out: measured from when the request was sent.</summary>
    public long LeaseExpiresAt { get => Volatile.Read(ref _leaseExpiresAt); set => Volatile.Write(ref _leaseExpiresAt, value); }

    private long _leaseExpiresAt = leaseExpiresAt;

    /// <summary>Cancelled when the server refuses a heartbeat: the job was cancelled or went to another worker.</summary>
    public CancellationTokenSource LeaseLost { get; } = new();

    public bool HeartbeatInFlight { get; set; }

    /// <summary>True once an outcome was handed to the acker; from then on a refused heartbeat means nothing.</summary>
    public bool IsSettled => Volatile.Read(ref _settled) == 1;

    /// <summary>Claims the right to report this job's outcome; false when it was already reported or given up.</summary>
    public bool TrySettle() => Interlocked.Exchange(ref _settled, 1) == 0;
}

internal enum AckKind
{
    Complete,
    Fail,
    Release,
}

/// <summary>One outcome waiting to be sent in a batch; <see cref="Done"/> gets the per-item status (null: never sent).</summary>
internal sealed record PendingAck(
    AckKind Kind,
    HeldJob Held,
    Action<PendingAck, int?, string?> Done,
    JsonElement? Result = null,
    string? Error = null,
    string? Stack = null,
    long? RetryInMs = null,
    bool Dead = false);
