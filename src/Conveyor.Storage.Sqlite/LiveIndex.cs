namespace Conveyor.Storage.Sqlite;

/// <summary>
/// The in-memory picture of every unfinished job: ready heaps per queue, the scheduled heap, the lease heap,
/// partition lines and counts. Leasing is a heap pop here, never a table scan. Leases exist only here: a crash
/// forgets them and the jobs are simply available again after restart (still at-least-once, DESIGN.md §5).
/// Every member must be called while holding <see cref="Gate"/>.
/// </summary>
internal sealed class LiveIndex
{
    public readonly Lock Gate = new();

    private readonly Dictionary<long, LiveJob> _jobs = [];
    private readonly Dictionary<string, QueueLine> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Queue, string Key), SortedSet<long>> _partitions = [];
    // Heaps use lazy deletion: an entry is valid only while its version matches the job's.
    private readonly PriorityQueue<(LiveJob Job, int Version), long> _scheduled = new();
    private readonly PriorityQueue<(LiveJob Job, int Version), long> _leases = new();
    private readonly Dictionary<long, List<TaskCompletionSource>> _finishWaiters = [];
    // When the maintenance loop means to wake next; an entry due earlier wakes it through MaintenanceDueEarlier.
    private long _maintenanceAtMs = long.MaxValue;

    /// <summary>Called (holding <see cref="Gate"/>) when something is due before the maintenance loop means to wake.</summary>
    public Action? MaintenanceDueEarlier { get; set; }

    public IEnumerable<QueueLine> Queues => _queues.Values;

    /// <summary>
    /// Since the store opened: jobs inserted (replays not counted), attempts completed, attempts failed. Counted by the
    /// writes' after-commit steps, so written under <see cref="Gate"/>; read with <c>Interlocked.Read</c>.
    /// </summary>
    public long Enqueued, Completed, Failed;

    public int Count => _jobs.Count;

    public LiveJob? Find(long id) => _jobs.GetValueOrDefault(id);

    private readonly Dictionary<string, string> _kinds = new(StringComparer.Ordinal);

    /// <summary>One string per distinct kind, so a million waiting jobs do not hold a million copies.</summary>
    public string Intern(string kind)
    {
        if (_kinds.TryGetValue(kind, out var known)) return known;
        _kinds[kind] = kind;
        return kind;
    }

    public QueueLine Queue(string name)
    {
        if (!_queues.TryGetValue(name, out var line))
        {
            line = new QueueLine(name);
            _queues[name] = line;
        }
        return line;
    }

    public QueueLine? FindQueue(string name) => _queues.GetValueOrDefault(name);

    /// <summary>Adds a committed waiting job (new, loaded at start, or retried by hand).</summary>
    public void Add(LiveJob job, long nowMs)
    {
        _jobs.Add(job.Id, job);
        if (job.PartitionKey is { } key)
        {
            var k = (job.Queue.Name, key);
            if (!_partitions.TryGetValue(k, out var ids)) _partitions[k] = ids = [];
            ids.Add(job.Id);
        }
        job.State = JobState.Scheduled;
        job.Queue.Scheduled++;
        Wait(job, nowMs);
    }

    /// <summary>Puts a job that is not running back to wait for its run_at (scheduled or available).</summary>
    private void Wait(LiveJob job, long nowMs)
    {
        if (job.RunAtMs > nowMs)
        {
            SetState(job, JobState.Scheduled);
            _scheduled.Enqueue((job, ++job.Version), job.RunAtMs);
            Due(job.RunAtMs);
        }
        else
        {
            SetState(job, JobState.Available);
            OfferIfEligible(job);
        }
    }

    private void SetState(LiveJob job, JobState state)
    {
        if (job.State == state) return;
        job.Queue.Adjust(job.State, -1);
        job.Queue.Adjust(state, +1);
        // A slot under a concurrency limit opened: long polls waiting on the limit may lease now.
        if (job.State == JobState.Running && job.Queue.Settings.MaxRunning is not null) job.Queue.Signal();
        job.State = state;
    }

    private bool IsPartitionHead(LiveJob job) =>
        job.PartitionKey is not { } key || _partitions[(job.Queue.Name, key)].Min == job.Id;

    /// <summary>Pushes an available job into its queue's ready heap when nothing earlier in its partition blocks it.</summary>
    private void OfferIfEligible(LiveJob job)
    {
        if (job.State != JobState.Available || job.Settling || !IsPartitionHead(job)) return;
        job.Queue.Ready.Enqueue((job, ++job.Version), new ReadyKey(-job.Priority, job.RunAtMs, job.Id));
        job.Queue.Signal();
    }

    public List<LiveJob> Lease(QueueLine queue, int max, long nowMs, long leaseMs, string? owner)
    {
        var picked = new List<LiveJob>(Math.Min(max, 64));
        if (queue.Paused) return picked;
        max = queue.Allowance(max, nowMs);
        while (picked.Count < max && queue.Ready.TryDequeue(out var entry, out _))
        {
            var job = entry.Job;
            if (entry.Version != job.Version || job.State != JobState.Available || job.Settling) continue;
            SetState(job, JobState.Running);
            job.Attempt++;
            job.LeaseToken = NewLeaseToken();
            job.LeaseOwner = owner;
            job.StartedMs = nowMs;
            job.LeaseExpiresMs = nowMs + leaseMs;
            job.ProgressJson = null;
            _leases.Enqueue((job, ++job.Version), job.LeaseExpiresMs);
            Due(job.LeaseExpiresMs);
            ConveyorMetrics.JobStarted(queue.Name, job.Kind, (nowMs - job.RunAtMs) / 1000.0);
            picked.Add(job);
        }
        queue.Spend(picked.Count);
        return picked;
    }

    // Lease tokens are 128 random bits from a buffer refilled 4 KiB at a time: Guid.NewGuid cost 1.3 µs per lease
    // (a fifth of the whole lease path in bench/Conveyor.Bench.Store's trace).
    private readonly byte[] _tokenBytes = new byte[4096];
    private int _tokenOffset = 4096;

    private string NewLeaseToken()
    {
        if (_tokenOffset + 16 > _tokenBytes.Length)
        {
            System.Security.Cryptography.RandomNumberGenerator.Fill(_tokenBytes);
            _tokenOffset = 0;
        }
        var token = Convert.ToHexStringLower(_tokenBytes, _tokenOffset, 16);
        _tokenOffset += 16;
        return token;
    }

    public void Extend(LiveJob job, long expiresMs)
    {
        job.LeaseExpiresMs = expiresMs;
        _leases.Enqueue((job, ++job.Version), expiresMs);
        Due(expiresMs);
    }

    private void Due(long atMs)
    {
        if (atMs >= _maintenanceAtMs) return;
        _maintenanceAtMs = atMs;
        MaintenanceDueEarlier?.Invoke();
    }

    /// <summary>A queue's settings changed: a new rate limit needs the maintenance loop's ticks.</summary>
    public void SettingsChanged(QueueLine queue, long nowMs)
    {
        if (queue.Settings.RatePerSecond is not null) Due(nowMs);
    }

    /// <summary>
    /// When maintenance next has work, remembered as the loop's wake-up: the earliest scheduled run_at or lease expiry
    /// (entries made stale since count too: waking for one costs a pop), or the next tick while any queue has a rate limit
    /// (its long polls wait for the bucket to refill); <see cref="long.MaxValue"/> when nothing is pending.
    /// </summary>
    public long NextMaintenanceMs(long nowMs, long tickMs)
    {
        var next = long.MaxValue;
        if (_scheduled.TryPeek(out _, out var runAt)) next = runAt;
        if (_leases.TryPeek(out _, out var expiresAt)) next = Math.Min(next, expiresAt);
        foreach (var queue in _queues.Values)
        {
            if (queue.Settings.RatePerSecond is null) continue;
            next = Math.Min(next, nowMs + tickMs);
            break;
        }
        _maintenanceAtMs = next;
        return next;
    }

    /// <summary>Moves scheduled jobs whose run_at has come to available.</summary>
    public void PromoteDue(long nowMs)
    {
        while (_scheduled.TryPeek(out var entry, out var runAt) && runAt <= nowMs)
        {
            _scheduled.Dequeue();
            var job = entry.Job;
            if (entry.Version != job.Version || job.State != JobState.Scheduled || job.Settling) continue;
            SetState(job, JobState.Available);
            OfferIfEligible(job);
        }
    }

    /// <summary>Takes the running jobs whose lease has expired off their workers. The caller records each durably.</summary>
    public List<LiveJob> TakeExpiredLeases(long nowMs)
    {
        List<LiveJob>? expired = null;
        while (_leases.TryPeek(out var entry, out var expiresAt) && expiresAt <= nowMs)
        {
            _leases.Dequeue();
            var job = entry.Job;
            if (entry.Version != job.Version || job.State != JobState.Running || job.Settling) continue;
            (expired ??= []).Add(job);
        }
        return expired ?? [];
    }

    /// <summary>After a lease expired with attempts left: the job is available again, its attempt counted.</summary>
    public void ReleaseExpired(LiveJob job, long nowMs)
    {
        job.ClearLease();
        job.RunAtMs = Math.Min(job.RunAtMs, nowMs);
        Wait(job, nowMs);
    }

    /// <summary>After a durable failure with a retry: back to scheduled until <paramref name="runAtMs"/>.</summary>
    public void Reschedule(LiveJob job, long runAtMs, long nowMs)
    {
        job.Settling = false;
        job.ClearLease();
        job.RunAtMs = runAtMs;
        Wait(job, nowMs);
    }

    /// <summary>Gives a leased job back untouched: available again and the attempt not counted.</summary>
    public void Release(LiveJob job, long nowMs)
    {
        job.Attempt--;
        job.ClearLease();
        Wait(job, nowMs);
    }

    /// <summary>Registers interest in a live job's finish (RPC result waits).</summary>
    public TaskCompletionSource AddFinishWaiter(long id)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_finishWaiters.TryGetValue(id, out var list)) _finishWaiters[id] = list = [];
        list.Add(waiter);
        return waiter;
    }

    public void RemoveFinishWaiter(long id, TaskCompletionSource waiter)
    {
        if (_finishWaiters.TryGetValue(id, out var list) && list.Remove(waiter) && list.Count == 0) _finishWaiters.Remove(id);
    }

    /// <summary>After a durable finish: the job leaves memory and the next job of its partition may run.</summary>
    public void Finish(LiveJob job, JobState finalState)
    {
        if (!_jobs.Remove(job.Id)) return;
        if (_finishWaiters.Remove(job.Id, out var waiters))
        {
            foreach (var waiter in waiters) waiter.TrySetResult();
        }
        job.Queue.Adjust(job.State, -1);
        job.Queue.Adjust(finalState, +1);
        if (job.State == JobState.Running && job.Queue.Settings.MaxRunning is not null) job.Queue.Signal();
        job.State = finalState;
        job.Version++;
        if (job.PartitionKey is { } key)
        {
            var k = (job.Queue.Name, key);
            var ids = _partitions[k];
            var wasHead = ids.Min == job.Id;
            ids.Remove(job.Id);
            if (ids.Count == 0) _partitions.Remove(k);
            else if (wasHead && _jobs.TryGetValue(ids.Min, out var next)) OfferIfEligible(next);
        }
    }

    /// <summary>After a durable delete of a job that was waiting: it leaves memory without a final state.</summary>
    public void Remove(LiveJob job)
    {
        Finish(job, job.State);
        job.Queue.Adjust(job.State, -1);
    }

    /// <summary>Wakes long polls on rate-limited queues once their bucket holds a token again.</summary>
    public void WakeRateLimited(long nowMs)
    {
        foreach (var queue in _queues.Values)
        {
            if (queue.Settings.RatePerSecond is not null && queue.Available > 0 && queue.Allowance(1, nowMs) > 0) queue.Signal();
        }
    }

    /// <summary>Undoes <see cref="LiveJob.Settling"/> when the durable write failed.</summary>
    public void Unsettle(LiveJob job)
    {
        job.Settling = false;
        if (job.State == JobState.Available) OfferIfEligible(job);
    }

    public void SetPaused(QueueLine queue, bool paused)
    {
        queue.Paused = paused;
        if (!paused) queue.Signal();
    }

    public IEnumerable<LiveJob> Running(QueueLine? queue) =>
        _jobs.Values.Where(j => j.State == JobState.Running && (queue is null || j.Queue == queue));
}

/// <summary>Ready order: higher priority first, then earlier run_at, then lower id.</summary>
internal readonly record struct ReadyKey(int NegPriority, long RunAtMs, long Id) : IComparable<ReadyKey>
{
    public int CompareTo(ReadyKey other)
    {
        var c = NegPriority.CompareTo(other.NegPriority);
        if (c != 0) return c;
        c = RunAtMs.CompareTo(other.RunAtMs);
        return c != 0 ? c : Id.CompareTo(other.Id);
    }
}

internal sealed class QueueLine(string name)
{
    public string Name { get; } = name;
    public bool Paused { get; set; }
    private QueueSettings _settings = QueueSettings.None;
    private double _tokens;
    private long _tokensAtMs;

    /// <summary>Limits and retention; setting them refills the rate bucket.</summary>
    public QueueSettings Settings
    {
        get => _settings;
        set
        {
            _settings = value;
            _tokens = BucketSize;
            _tokensAtMs = 0;
        }
    }

    private double BucketSize => Math.Max(1, _settings.RatePerSecond ?? 0);

    /// <summary>How many of <paramref name="wanted"/> jobs the concurrency and rate limits allow to start now.</summary>
    public int Allowance(int wanted, long nowMs)
    {
        var allowed = wanted;
        if (_settings.MaxRunning is { } cap) allowed = (int)Math.Clamp(cap - Running, 0, allowed);
        if (_settings.RatePerSecond is { } rate)
        {
            if (_tokensAtMs != 0) _tokens = Math.Min(BucketSize, _tokens + (nowMs - _tokensAtMs) / 1000.0 * rate);
            _tokensAtMs = nowMs;
            allowed = (int)Math.Clamp(Math.Floor(_tokens), 0, allowed);
        }
        return allowed;
    }

    public void Spend(int started)
    {
        if (_settings.RatePerSecond is not null) _tokens -= started;
    }
    public readonly PriorityQueue<(LiveJob Job, int Version), ReadyKey> Ready = new();
    public long Scheduled, Available, Running, Completed, Dead, Cancelled;
    private List<TaskCompletionSource>? _waiters;

    public StateCounts Counts => new(Scheduled, Available, Running, Completed, Dead, Cancelled);

    public void Adjust(JobState state, long delta)
    {
        switch (state)
        {
            case JobState.Scheduled: Scheduled += delta; break;
            case JobState.Available: Available += delta; break;
            case JobState.Running: Running += delta; break;
            case JobState.Completed: Completed += delta; break;
            case JobState.Dead: Dead += delta; break;
            case JobState.Cancelled: Cancelled += delta; break;
        }
    }

    /// <summary>Registers a long-polling lease; it is woken when a job may be leasable here.</summary>
    public TaskCompletionSource AddWaiter()
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        (_waiters ??= []).Add(waiter);
        return waiter;
    }

    public void RemoveWaiter(TaskCompletionSource waiter) => _waiters?.Remove(waiter);

    public void Signal()
    {
        if (_waiters is not { Count: > 0 } waiters) return;
        foreach (var waiter in waiters) waiter.TrySetResult();
        waiters.Clear();
    }
}

internal sealed class LiveJob(long id, QueueLine queue, string kind, int priority, long runAtMs, int attempt, int maxAttempts, string? partitionKey)
{
    public long Id { get; } = id;
    public string Kind { get; } = kind;
    public QueueLine Queue { get; } = queue;
    public int Priority { get; } = priority;
    public string? PartitionKey { get; } = partitionKey;
    public int MaxAttempts { get; } = maxAttempts;
    public long RunAtMs { get; set; } = runAtMs;
    public int Attempt { get; set; } = attempt;
    public JobState State { get; set; } = JobState.Scheduled;
    public int Version { get; set; }
    /// <summary>A durable finish (complete, fail, cancel) is in flight: not leasable, not reapable.</summary>
    public bool Settling { get; set; }

    // Lease fields live in their own object, made only while the job runs: a waiting job (most of a big backlog)
    // then costs 40 bytes less (issue 8: server memory with 1,000,000 waiting jobs).
    private LeaseState? _lease;

    private LeaseState Lease => _lease ??= new LeaseState();

    public string? LeaseToken
    {
        get => _lease?.Token;
        set { if (value is not null || _lease is not null) Lease.Token = value; }
    }

    public string? LeaseOwner
    {
        get => _lease?.Owner;
        set { if (value is not null || _lease is not null) Lease.Owner = value; }
    }

    public long LeaseExpiresMs
    {
        get => _lease?.ExpiresMs ?? 0;
        set => Lease.ExpiresMs = value;
    }

    public long StartedMs
    {
        get => _lease?.StartedMs ?? 0;
        set => Lease.StartedMs = value;
    }

    public string? ProgressJson
    {
        get => _lease?.Progress;
        set { if (value is not null || _lease is not null) Lease.Progress = value; }
    }

    /// <summary>The job stopped running (released, rescheduled, lease expired): its lease fields go.</summary>
    public void ClearLease() => _lease = null;

    private sealed class LeaseState
    {
        public string? Token;
        public string? Owner;
        public string? Progress;
        public long ExpiresMs;
        public long StartedMs;
    }

    public LiveView View() => new(State, Attempt, RunAtMs, LeaseToken, LeaseOwner, LeaseExpiresMs, StartedMs, ProgressJson);
}

/// <summary>A copy of a live job's fields, taken under the gate, to lay over its stored row.</summary>
internal readonly record struct LiveView(
    JobState State, int Attempt, long RunAtMs, string? LeaseToken, string? LeaseOwner, long LeaseExpiresMs, long StartedMs, string? ProgressJson);
