using System.Globalization;

namespace Conveyor.Client;

/// <summary>
/// Settings of the worker host that <c>services.AddConveyorWorker(o => o.Queue("emails", concurrency: 16))</c> adds.
/// Validated when the host starts, with sentences that say what to change.
/// </summary>
public sealed class ConveyorWorkerOptions
{
    public static readonly TimeSpan DefaultShutdownGracePeriod = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan DefaultPollWait = TimeSpan.FromSeconds(5);
    public const int DefaultAckBatchSize = 500;

    private readonly List<ConveyorQueueOptions> _queues = [];

    /// <summary>Shown as the lease owner (<c>conveyor get</c>); defaults to <c>host:pid</c>.</summary>
    public string WorkerName { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// On shutdown, how long running handlers may take to finish before their tokens are cancelled and their jobs
    /// released (default 20 s). Keep it below the host's <c>HostOptions.ShutdownTimeout</c> (30 s by default), after
    /// which the host stops waiting altogether and unsent outcomes are left to lease expiry.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = DefaultShutdownGracePeriod;

    /// <summary>
    /// How long one lease request waits on the server for a job when the queue is empty (long poll, at most 30 s;
    /// default 5 s). A lease request in flight is never cancelled (its jobs would be stranded until their leases
    /// expire), so shutdown can take up to this long to begin releasing.
    /// </summary>
    public TimeSpan PollWait { get; set; } = DefaultPollWait;

    /// <summary>Most outcomes (completes, fails, releases) sent in one <c>POST /v1/jobs/ack</c> (default 500, at most 10,000).</summary>
    public int AckBatchSize { get; set; } = DefaultAckBatchSize;

    /// <summary>The queues declared so far (queues that only have handlers get default settings at start).</summary>
    public IReadOnlyList<ConveyorQueueOptions> Queues => _queues;

    /// <summary>
    /// Declares (or updates) a queue to work on. Unset arguments keep their current value (defaults: concurrency 10,
    /// timeout 5 min, lease 30 s, no prefetch). Returns the queue's options for the rest of the settings.
    /// </summary>
    public ConveyorQueueOptions Queue(
        string name, int? concurrency = null, TimeSpan? timeout = null, TimeSpan? leaseDuration = null, int? prefetch = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var queue = _queues.Find(q => q.Name == name);
        if (queue is null)
        {
            queue = new ConveyorQueueOptions(name);
            _queues.Add(queue);
        }

        if (concurrency is { } c)
        {
            queue.Concurrency = c;
        }

        if (timeout is { } t)
        {
            queue.Timeout = t;
        }

        if (leaseDuration is { } l)
        {
            queue.LeaseDuration = l;
        }

        if (prefetch is { } p)
        {
            queue.Prefetch = p;
        }

        return queue;
    }

    /// <summary>Throws with a sentence a person can act on when a setting cannot work.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(WorkerName) || WorkerName.Length > 128)
        {
            throw new InvalidOperationException("ConveyorWorkerOptions.WorkerName must be 1-128 characters long.");
        }

        if (ShutdownGracePeriod < TimeSpan.Zero)
        {
            throw new InvalidOperationException("ConveyorWorkerOptions.ShutdownGracePeriod must not be negative.");
        }

        if (PollWait < TimeSpan.Zero || PollWait > ConveyorClient.MaxServerWait)
        {
            throw new InvalidOperationException($"ConveyorWorkerOptions.PollWait must be between 0 and 30 s, not {PollWait}.");
        }

        if (AckBatchSize is < 1 or > ConveyorClient.MaxBatchItems)
        {
            throw new InvalidOperationException($"ConveyorWorkerOptions.AckBatchSize must be between 1 and 10000, not {AckBatchSize}.");
        }

        foreach (var queue in _queues)
        {
            queue.Validate();
        }
    }
}

/// <summary>How one queue is worked on.</summary>
public sealed class ConveyorQueueOptions
{
    public const int DefaultConcurrency = 10;
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan DefaultLeaseDuration = TimeSpan.FromSeconds(30);

    internal ConveyorQueueOptions(string name) => Name = name;

    public string Name { get; }

    /// <summary>Most handlers running at once for this queue (default 10).</summary>
    public int Concurrency { get; set; } = DefaultConcurrency;

    /// <summary>
    /// Extra jobs leased ahead of free handler slots so the next job is ready when one finishes (default 0). Prefetched
    /// jobs hold leases (heartbeated) that other workers cannot take; on shutdown they are released, not run.
    /// </summary>
    public int Prefetch { get; set; }

    /// <summary>
    /// One attempt's time limit (default 5 min; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for none). Past it the handler's
    /// token is cancelled and the attempt fails as timed out, whether or not the handler stops.
    /// </summary>
    public TimeSpan Timeout { get; set; } = DefaultTimeout;

    /// <summary>
    /// The lease asked for (1 s to 12 h, default 30 s). The worker heartbeats a job when half of it is left, so a long
    /// job keeps its lease; a crashed worker's jobs go back to the queue after at most this long.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = DefaultLeaseDuration;

    internal void Validate()
    {
        if (!IsValidQueueName(Name))
        {
            throw new InvalidOperationException(
                $"'{Name}' is not a valid queue name: use 1-128 letters, digits, '.', '_', '-' or ':'.");
        }

        if (Concurrency < 1)
        {
            throw new InvalidOperationException($"Queue '{Name}': Concurrency must be at least 1, not {Concurrency}.");
        }

        if (Prefetch < 0)
        {
            throw new InvalidOperationException($"Queue '{Name}': Prefetch must not be negative, not {Prefetch}.");
        }

        if (Timeout != System.Threading.Timeout.InfiniteTimeSpan && Timeout <= TimeSpan.Zero)
        {
            throw new InvalidOperationException($"Queue '{Name}': Timeout must be positive (or Timeout.InfiniteTimeSpan), not {Timeout}.");
        }

        if (LeaseDuration < TimeSpan.FromSeconds(1) || LeaseDuration > TimeSpan.FromHours(12))
        {
            throw new InvalidOperationException($"Queue '{Name}': LeaseDuration must be between 1 s and 12 h (the server's limits), not {LeaseDuration}.");
        }
    }

    private static bool IsValidQueueName(string name)
    {
        if (name.Length is 0 or > 128)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':'))
            {
                return false;
            }
        }

        return true;
    }
}
