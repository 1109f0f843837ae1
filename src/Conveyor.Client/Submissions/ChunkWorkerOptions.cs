namespace Conveyor.Client;

/// <summary>Settings of one chunk worker (one queue); validated when it starts, with sentences that say what to change.</summary>
public sealed class ChunkWorkerOptions
{
    /// <summary>
    /// How chunks are reserved and finished: one <c>/v1/consume</c> WebSocket (default: low latency, and whatever the
    /// worker holds is released by the server at once if it dies or disconnects), or the HTTP routes (through proxies
    /// that do not pass WebSockets; a dead worker's chunks wait for their lease to expire).
    /// </summary>
    public ChunkWorkerTransport Transport { get; set; } = ChunkWorkerTransport.WebSocket;

    /// <summary>Chunks handled at once (default 4).</summary>
    public int Concurrency { get; set; } = 4;

    /// <summary>How long a chunk's lease lasts without a heartbeat (default 30 s, 1 s to 1 day).</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a running chunk's lease is extended; default a third of <see cref="LeaseDuration"/>.</summary>
    public TimeSpan? HeartbeatInterval { get; set; }

    /// <summary>
    /// How long one reserve request waits on the server when no chunk is ready (long poll, at most 60 s; default 5 s).
    /// A reserve in flight is never cancelled (its chunks would be stranded until their leases expire), so shutdown can
    /// take up to this long.
    /// </summary>
    public TimeSpan PollWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Which submissions to take chunks from first (default <see cref="ChunkReservationOrder.Oldest"/>).</summary>
    public ChunkReservationOrder Order { get; set; } = ChunkReservationOrder.Oldest;

    /// <summary>A label name (e.g. <c>company_id</c>): spread reservations across its values, so one big submitter cannot starve the others.</summary>
    public string? PreferDistinct { get; set; }

    /// <summary>On shutdown, how long running handlers may take before they are cancelled and their chunks released (default 20 s).</summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(20);

    internal TimeSpan Heartbeat => HeartbeatInterval ?? LeaseDuration / 3;

    /// <summary>Throws with a sentence a person can act on when a setting cannot work.</summary>
    public void Validate(string queue)
    {
        if (string.IsNullOrWhiteSpace(queue))
        {
            throw new InvalidOperationException("A chunk worker needs the queue its submissions were made in.");
        }

        if (Concurrency is < 1 or > 1000)
        {
            throw new InvalidOperationException($"Chunk worker '{queue}': Concurrency must be 1 to 1000, not {Concurrency}.");
        }

        if (LeaseDuration < TimeSpan.FromSeconds(1) || LeaseDuration > TimeSpan.FromDays(1))
        {
            throw new InvalidOperationException($"Chunk worker '{queue}': LeaseDuration must be 1 s to 1 day, not {LeaseDuration}.");
        }

        if (Heartbeat <= TimeSpan.Zero || Heartbeat >= LeaseDuration)
        {
            throw new InvalidOperationException(
                $"Chunk worker '{queue}': HeartbeatInterval ({Heartbeat}) must be positive and shorter than LeaseDuration ({LeaseDuration}).");
        }

        if (PollWait < TimeSpan.Zero || PollWait > TimeSpan.FromSeconds(60))
        {
            throw new InvalidOperationException($"Chunk worker '{queue}': PollWait must be 0 to 60 s, not {PollWait}.");
        }

        if (ShutdownGracePeriod < TimeSpan.Zero)
        {
            throw new InvalidOperationException($"Chunk worker '{queue}': ShutdownGracePeriod cannot be negative.");
        }
    }
}

/// <summary>How a <see cref="ChunkWorker"/> talks to the server.</summary>
public enum ChunkWorkerTransport
{
    /// <summary>One <c>GET /v1/consume</c> WebSocket per worker, messages matched by id.</summary>
    WebSocket,

    /// <summary><c>POST /v1/chunks/reserve</c> long polls and the complete/fail/heartbeat/release routes.</summary>
    Http,
}
