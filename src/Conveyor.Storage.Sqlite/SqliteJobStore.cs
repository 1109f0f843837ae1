using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with synchronous=FULL.
/// <list type="bullet">
/// <item>Writes go through one writer loop that folds every queued request into one transaction and one fsync (group commit).</item>
/// <item>Unfinished jobs are mirrored in <see cref="LiveIndex"/> (rebuilt from the file at start), so leasing is a heap pop.</item>
/// <item>Leases and the scheduled→available promotion live only in memory: a job costs one durable insert and one durable
/// finish. A crash forgets leases; those jobs are available again after restart (at-least-once). Trade-off against
/// Postgres: a lease's attempt is recorded only when the job finishes, fails or its lease expires.</item>
/// </list>
/// </summary>
public sealed class SqliteJobStore : IJobStore
{
    private readonly SqliteStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly string _readConnectionString;
    private readonly LiveIndex _index = new();
    // Bounded so a flood of producers waits instead of growing memory without limit; one reader: the writer loop.
    private readonly Channel<WriteOp> _writes = Channel.CreateBounded<WriteOp>(
        new BoundedChannelOptions(8192) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly ConcurrentBag<SqliteReader> _readers = [];
    private readonly SqliteWriter _writer;
    private readonly Task _writerLoop;
    private readonly Task _maintenanceLoop;
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    private SqliteJobStore(SqliteStoreOptions options)
    {
        _options = options;
        _time = options.TimeProvider;
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(options.Path));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        var builder = new SqliteConnectionStringBuilder { DataSource = options.Path, Pooling = false, Mode = SqliteOpenMode.ReadWriteCreate };
        var connection = new SqliteConnection(builder.ToString());
        connection.Open();
        Schema.Exec(connection, "PRAGMA journal_mode = WAL");
        // Durability: FULL fsyncs the WAL at every commit, so an acknowledged write survives power loss.
        Schema.Exec(connection, "PRAGMA synchronous = FULL");
        Schema.Exec(connection, "PRAGMA busy_timeout = 5000");
        Schema.Migrate(connection, options.MigrationStarting);
        _readConnectionString = builder.ToString();
        LoadLiveJobs(connection);
        _writer = new SqliteWriter(connection);
        _writerLoop = Task.Factory.StartNew(WriterLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _index.MaintenanceDueEarlier = () => _maintenanceDue.TrySetResult();
        _maintenanceLoop = options.RunMaintenanceLoop ? Task.Run(MaintenanceLoop) : Task.CompletedTask;
    }

    /// <summary>Opens (creating and migrating when needed) the store at <see cref="SqliteStoreOptions.Path"/>.</summary>
    public static SqliteJobStore Open(SqliteStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        SqliteLibrary.Configure();
        return new SqliteJobStore(options);
    }

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private void LoadLiveJobs(SqliteConnection connection)
    {
        var now = NowMs;
        using (var q = connection.CreateCommand())
        {
            q.CommandText = "SELECT name, paused, max_running, rate_per_second, retention_ms, push, destinations FROM queues";
            using var r = q.ExecuteReader();
            while (r.Read())
            {
                var line = _index.Queue(r.GetString(0));
                line.Paused = r.GetInt64(1) != 0;
                line.Settings = new QueueSettings
                {
                    MaxRunning = r.IsDBNull(2) ? null : r.GetInt32(2),
                    RatePerSecond = r.IsDBNull(3) ? null : r.GetDouble(3),
                    Retention = r.IsDBNull(4) ? null : TimeSpan.FromMilliseconds(r.GetInt64(4)),
                    Push = r.GetInt64(5) != 0,
                    DestinationsJson = r.IsDBNull(6) ? null : r.GetString(6),
                };
            }
        }
        using (var q = connection.CreateCommand())
        {
            q.CommandText = $"SELECT queue, state, count(*) FROM jobs WHERE state <> {JobsTable.Waiting} GROUP BY queue, state";
            using var r = q.ExecuteReader();
            while (r.Read()) _index.Queue(r.GetString(0)).Adjust((JobState)r.GetInt32(1), r.GetInt64(2));
        }
        foreach (var line in _index.Queues.ToList())
        {
            using var q = connection.CreateCommand();
            q.CommandText = $"SELECT id, priority, run_at, attempt, max_attempts, partition_key, kind FROM jobs WHERE queue = $queue AND state = {JobsTable.Waiting} ORDER BY id";
            q.Parameters.AddWithValue("$queue", line.Name);
            using var r = q.ExecuteReader();
            while (r.Read())
            {
                _index.Add(new LiveJob(r.GetInt64(0), line, _index.Intern(r.GetString(6)), r.GetInt32(1), r.GetInt64(2), r.GetInt32(3), r.GetInt32(4),
                    r.IsDBNull(5) ? null : r.GetString(5)), now);
            }
        }
    }

    // ---- writer loop -------------------------------------------------------------------------------------------

    /// <summary>
    /// Runs on a thread of its own for the store's life and blocks there, in the wait for work and in each commit's
    /// flush. As an async loop it resumed on a thread-pool thread after every wait: one more hand-off per commit, and a
    /// pool thread held through the flush. The thread of its own cut the machine's context switches per W3 job from
    /// about 25 to 13 and raised W3 (eight producers) by about a tenth on two cores (docs/benchmarks.md).
    /// </summary>
    private void WriterLoop()
    {
        var batch = new List<WriteOp>(_options.MaxOpsPerCommit);
        var reader = _writes.Reader;
        while (WaitForWrites(reader))
        {
            batch.Clear();
            while (batch.Count < _options.MaxOpsPerCommit && reader.TryRead(out var op)) batch.Add(op);
            if (!TryCommit(batch))
            {
                // One bad request must not sink the others that shared its transaction: retry each alone.
                foreach (var op in batch) TryCommit([op]);
            }
        }
    }

    private static bool WaitForWrites(ChannelReader<WriteOp> reader)
    {
        var more = reader.WaitToReadAsync();
        return more.IsCompleted ? more.Result : more.AsTask().GetAwaiter().GetResult();
    }

    private bool TryCommit(List<WriteOp> ops)
    {
        var now = NowMs;
        var started = Stopwatch.GetTimestamp();
        try
        {
            _writer.Begin();
            foreach (var op in ops) op.Apply(_writer, now);
            _writer.Commit();
            ConveyorMetrics.StoreCommitted("sqlite", ops.Count, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        catch (Exception error)
        {
            _writer.Rollback();
            if (ops.Count > 1) return false;
            lock (_index.Gate) ops[0].AfterRollback(_index);
            ops[0].Fail(error);
            return true;
        }
        now = NowMs;
        lock (_index.Gate)
        {
            foreach (var op in ops) op.AfterCommit(_index, now);
        }
        foreach (var op in ops) op.Answer();
        return true;
    }

    private Task<T> Submit<T>(WriteOp<T> op, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        // Most writes find room in the channel at once: the op's own task is then the answer, with no state machine (and
        // its allocation and continuation) between it and the caller.
        var queued = _writes.Writer.WriteAsync(op, cancellationToken);
        return queued.IsCompletedSuccessfully ? op.Task : AfterQueued(queued, op);
    }

    private static async Task<T> AfterQueued<T>(ValueTask queued, WriteOp<T> op)
    {
        await queued.ConfigureAwait(false);
        // Once queued, the write happens: do not abandon it on cancellation, or the caller could not tell.
        return await op.Task.ConfigureAwait(false);
    }

    // ---- maintenance: promotion of scheduled jobs and lease expiry ----------------------------------------------

    /// <summary>
    /// Sleeps until the earliest scheduled run_at or lease expiry (at least one tick, at most <see cref="IdleMaintenanceWait"/>),
    /// woken earlier when an entry due sooner arrives: an idle server wakes it once a minute instead of every tick, and
    /// each wake-up of a thread-pool thread costs its spin on this machine's two cores (docs/benchmarks.md).
    /// </summary>
    private async Task MaintenanceLoop()
    {
        var tickMs = Math.Max(1, (long)_options.MaintenanceInterval.TotalMilliseconds);
        try
        {
            while (true)
            {
                Task dueEarlier;
                long waitMs;
                lock (_index.Gate)
                {
                    // A fresh signal before reading the heaps: an entry added after this read wakes the wait below.
                    _maintenanceDue = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    dueEarlier = _maintenanceDue.Task;
                    var now = NowMs;
                    var next = _index.NextMaintenanceMs(now, tickMs);
                    var idleMs = (long)IdleMaintenanceWait.TotalMilliseconds;
                    // Due already: at once. Otherwise at least a tick, so a stream of leases does not wake it every millisecond.
                    waitMs = next == long.MaxValue ? idleMs : next <= now ? 0 : Math.Clamp(next - now, tickMs, idleMs);
                }
                if (waitMs > 0)
                {
                    using var waitEnded = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                    await Task.WhenAny(dueEarlier, Task.Delay(TimeSpan.FromMilliseconds(waitMs), _time, waitEnded.Token)).ConfigureAwait(false);
                    await waitEnded.CancelAsync().ConfigureAwait(false);
                }
                _stopping.Token.ThrowIfCancellationRequested();
                try { await RunMaintenanceAsync(_stopping.Token).ConfigureAwait(false); }
                catch (Exception) when (!_stopping.IsCancellationRequested) { /* the next wake-up tries again */ }
            }
        }
        catch (OperationCanceledException) { }
    }

    // Completed (holding the index's Gate) when an entry falls due before the maintenance loop means to wake.
    private TaskCompletionSource _maintenanceDue = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// The longest the maintenance loop sleeps with nothing due: every entry reaches the heaps through this process and
    /// wakes it when due sooner, so this only bounds a wake-up that was somehow missed.
    /// </summary>
    internal static readonly TimeSpan IdleMaintenanceWait = TimeSpan.FromMinutes(1);

    /// <summary>Promotes due scheduled jobs and expires lapsed leases once. The background loop calls this; so do tests.</summary>
    public async Task RunMaintenanceAsync(CancellationToken cancellationToken = default)
    {
        var now = NowMs;
        List<(LiveJob, int, long, bool)>? expired = null;
        lock (_index.Gate)
        {
            _index.PromoteDue(now);
            _index.WakeRateLimited(now);
            foreach (var job in _index.TakeExpiredLeases(now))
            {
                var attempt = job.Attempt;
                var startedMs = job.StartedMs;
                var dead = JobTransitions.OnLeaseExpired(attempt, job.MaxAttempts) == JobState.Dead;
                if (dead) job.Settling = true;
                else _index.ReleaseExpired(job, now);
                (expired ??= []).Add((job, attempt, startedMs, dead));
            }
        }
        if (expired is not null) await Submit(new ExpireOp(expired), cancellationToken).ConfigureAwait(false);
    }

    // ---- reads --------------------------------------------------------------------------------------------------

    private T Read<T>(Func<SqliteReader, T> read)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (!_readers.TryTake(out var reader)) reader = new SqliteReader(_readConnectionString);
        try
        {
            return read(reader);
        }
        finally
        {
            if (_readers.Count < _options.MaxIdleReaders) _readers.Add(reader);
            else reader.Dispose();
        }
    }

    private LiveView? ViewOf(long id)
    {
        lock (_index.Gate) return _index.Find(id)?.View();
    }

    private List<Job> ReadJobs(SqliteReader reader, SqliteCommand command)
    {
        var jobs = new List<Job>();
        using (var r = command.ExecuteReader())
        {
            var now = NowMs;
            while (r.Read())
            {
                var stored = r.GetInt32(3);
                LiveView? live = stored == JobsTable.Waiting ? ViewOf(r.GetInt64(0)) : null;
                jobs.Add(RowMapper.ToJob(r, live, now));
            }
        }
        return jobs;
    }

    // SQLite reads are synchronous; the async contract methods wrap these, and the store's own callers use them directly.
    private Job? GetOne(long id) => Read(reader =>
    {
        var command = reader.Command(SqliteReader.ById);
        command.Parameters.AddWithValue("$id", id);
        return ReadJobs(reader, command).FirstOrDefault();
    });

    private List<Job> GetMany(IReadOnlyList<long> ids) => ids.Count == 0 ? [] : Read(reader =>
    {
        var command = reader.Command(SqliteReader.ByIds);
        command.Parameters.AddWithValue("$ids", RowMapper.IdsToJson(ids));
        return ReadJobs(reader, command);
    });

    /// <summary>The leased jobs' rows in one raw read, answered in lease order (priority, run_at, id) with the lease's live state.</summary>
    private List<Job> ReadLeased(List<LiveJob> picked, LiveView[] views) => Read<List<Job>>(reader =>
    {
        var statement = reader.ByIdsRaw;
        var order = new Dictionary<long, int>(picked.Count);
        for (var i = 0; i < picked.Count; i++) order[picked[i].Id] = i;
        var jobs = new Job?[picked.Count];
        var now = NowMs;
        statement.Bind(1, RowMapper.IdsToJson(order.Keys));
        try
        {
            while (statement.StepRow())
            {
                var row = statement.Row;
                var i = order[row.GetInt64(0)];
                jobs[i] = RowMapper.ToJob(row, views[i], now);
            }
        }
        finally
        {
            statement.Reset();
        }
        // A leased job is live, so its row is there: inserts commit before a job enters the index.
        return [.. jobs.OfType<Job>()];
    });

    private List<QueueInfo> ListQueues()
    {
        lock (_index.Gate) return _index.Queues.OrderBy(q => q.Name, StringComparer.Ordinal).Select(Info).ToList();
    }

    public ValueTask<Job?> JobGetAsync(long id, CancellationToken cancellationToken) => ValueTask.FromResult(GetOne(id));

    public ValueTask<IReadOnlyList<Job>> JobGetManyAsync(IReadOnlyList<long> ids, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<Job>>(GetMany(ids));

    private int? StoredStateOf(long id) => Read(reader =>
    {
        var command = reader.Command(SqliteReader.StateById);
        command.Parameters.AddWithValue("$id", id);
        return command.ExecuteScalar() is long state ? (int?)state : null;
    });

    /// <summary>The answer for a job that is not live: 404 when it never existed, 409 with its final state otherwise.</summary>
    private JobOutcome NotLive(long id, Func<JobState, JobOutcome> finished)
    {
        var stored = StoredStateOf(id);
        if (stored is null) return JobOutcome.NotFound(id);
        // Waiting in the file but not in memory: it finished between our look at memory and the read.
        return finished(stored == JobsTable.Waiting ? JobState.Available : (JobState)stored.Value);
    }

    public ValueTask<IReadOnlyList<JobEvent>?> JobEventsAsync(long id, CancellationToken cancellationToken)
    {
        var job = GetOne(id);
        if (job is null) return ValueTask.FromResult<IReadOnlyList<JobEvent>?>(null);
        var events = new List<JobEvent>
        {
            new(job.CreatedAt, JobEventTypes.Created, job.RunAt > job.CreatedAt ? JobState.Scheduled : JobState.Available, 0, null),
        };
        Read(reader =>
        {
            var command = reader.Command(SqliteReader.EventsById);
            command.Parameters.AddWithValue("$id", id);
            using var r = command.ExecuteReader();
            while (r.Read())
            {
                events.Add(new JobEvent(RowMapper.FromMs(r.GetInt64(0)), r.GetString(1), (JobState)r.GetInt32(2), r.GetInt32(3),
                    r.IsDBNull(4) ? null : r.GetString(4)));
            }
            return events.Count;
        });
        // The happy path is read off the row itself: the current attempt's start and the completion.
        if (job.StartedAt is { } started && job.State is JobState.Running or JobState.Completed)
            events.Add(new JobEvent(started, JobEventTypes.Started, JobState.Running, job.Attempt, job.Lease?.Owner));
        if (job.State == JobState.Completed && job.FinishedAt is { } finished)
            events.Add(new JobEvent(finished, JobEventTypes.Completed, JobState.Completed, job.Attempt, null));
        events.Sort((a, b) => a.At.CompareTo(b.At));
        return ValueTask.FromResult<IReadOnlyList<JobEvent>?>(events);
    }

    public ValueTask<JobPage> JobSearchAsync(JobQuery query, CancellationToken cancellationToken)
    {
        var limit = Math.Clamp(query.Limit, 1, JobLimits.MaxSearchLimit);
        var before = query.BeforeId ?? long.MaxValue;
        var results = new List<Job>(limit);
        var liveState = query.State is JobState.Scheduled or JobState.Available or JobState.Running;

        if (query.State == JobState.Running)
        {
            // Running jobs exist only in memory: take their ids from there, newest first.
            List<long> ids;
            lock (_index.Gate)
            {
                var line = query.Queue is null ? null : _index.FindQueue(query.Queue);
                ids = query.Queue is not null && line is null
                    ? []
                    : _index.Running(line).Select(j => j.Id).Where(id => id < before).OrderByDescending(id => id).ToList();
            }
            for (var offset = 0; offset < ids.Count && results.Count < limit; offset += limit)
            {
                var chunk = ids.Skip(offset).Take(limit).ToList();
                var jobs = GetMany(chunk);
                foreach (var job in jobs.OrderByDescending(j => j.Id))
                {
                    if (results.Count == limit) break;
                    if (job.State == JobState.Running && Matches(job, query)) results.Add(job);
                }
            }
        }
        else
        {
            // Finished states are exact in SQL; waiting rows are filtered again once the live state is laid over them.
            var sql = SqliteReader.Search(query, waitingOnly: liveState);
            while (results.Count < limit)
            {
                var page = Read(reader =>
                {
                    var command = reader.Command(sql);
                    if (query.Queue is not null) command.Parameters.AddWithValue("$queue", query.Queue);
                    if (!liveState && query.State is { } state) command.Parameters.AddWithValue("$state", (int)state);
                    if (query.Kind is not null) command.Parameters.AddWithValue("$kind", query.Kind);
                    if (query.Tag is not null) command.Parameters.AddWithValue("$tag", query.Tag);
                    if (query.Text is not null) command.Parameters.AddWithValue("$text", query.Text);
                    command.Parameters.AddWithValue("$before", before);
                    command.Parameters.AddWithValue("$limit", liveState ? limit * 2 : limit);
                    return ReadJobs(reader, command);
                });
                foreach (var job in page)
                {
                    if (results.Count == limit) break;
                    if (query.State is not { } wanted || job.State == wanted) results.Add(job);
                }
                if (page.Count == 0 || !liveState) break;
                before = page[^1].Id;
            }
        }
        long? next = results.Count == limit ? results[^1].Id : null;
        return ValueTask.FromResult(new JobPage(results, next));
    }

    private static bool Matches(Job job, JobQuery query) =>
        (query.Kind is null || job.Kind == query.Kind) && (query.Tag is null || job.Tags.Contains(query.Tag))
        && (query.Text is null || (job.PayloadJson?.Contains(query.Text, StringComparison.Ordinal) ?? false));

    public ValueTask<IReadOnlyList<QueueInfo>> QueueListAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<QueueInfo>>(ListQueues());

    public ValueTask<StoreStats> StatsAsync(CancellationToken cancellationToken)
    {
        var queues = ListQueues();
        return ValueTask.FromResult(new StoreStats(queues, Interlocked.Read(ref _index.Enqueued), Interlocked.Read(ref _index.Completed),
            Interlocked.Read(ref _index.Failed)));
    }

    // ---- writes -------------------------------------------------------------------------------------------------

    public ValueTask<IReadOnlyList<InsertedJob>> JobInsertManyAsync(IReadOnlyList<NewJob> jobs, CancellationToken cancellationToken) =>
        jobs.Count == 0 ? ValueTask.FromResult<IReadOnlyList<InsertedJob>>([]) : new(Submit(new InsertOp(jobs), cancellationToken));

    public async ValueTask<IReadOnlyList<Job>> JobLeaseAvailableAsync(LeaseRequest request, CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + request.Wait;
        while (true)
        {
            List<LiveJob> picked;
            LiveView[]? views = null;
            TaskCompletionSource? waiter = null;
            QueueLine line;
            lock (_index.Gate)
            {
                line = _index.Queue(request.Queue);
                picked = _index.Lease(line, request.Max, NowMs, (long)request.LeaseDuration.TotalMilliseconds, request.Worker);
                if (picked.Count == 0 && _time.GetUtcNow() < deadline) waiter = line.AddWaiter();
                // The lease just made is the live state to lay over the rows: no second look under the lock per row.
                else if (picked.Count > 0) views = [.. picked.Select(j => j.View())];
            }
            if (views is not null) return ReadLeased(picked, views);
            if (waiter is null) return [];
            try
            {
                var remaining = deadline - _time.GetUtcNow();
                await waiter.Task.WaitAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                lock (_index.Gate) line.RemoveWaiter(waiter);
                return [];
            }
            catch (OperationCanceledException)
            {
                lock (_index.Gate) line.RemoveWaiter(waiter);
                throw;
            }
        }
    }

    public ValueTask<JobOutcome> JobHeartbeatAsync(long id, string leaseToken, TimeSpan extendBy, string? progressJson, CancellationToken cancellationToken)
    {
        lock (_index.Gate)
        {
            var job = _index.Find(id);
            if (job is not null)
            {
                if (job.State != JobState.Running || job.Settling || job.LeaseToken != leaseToken)
                    return ValueTask.FromResult(JobOutcome.Stale(id, job.State));
                _index.Extend(job, NowMs + (long)extendBy.TotalMilliseconds);
                if (progressJson is not null) job.ProgressJson = progressJson;
                return ValueTask.FromResult(JobOutcome.Ok(id, JobState.Running));
            }
        }
        return ValueTask.FromResult(NotLive(id, state => JobOutcome.Stale(id, state)));
    }

    public async ValueTask<IReadOnlyList<JobOutcome>> JobAckManyAsync(IReadOnlyList<AckRequest> acks, CancellationToken cancellationToken)
    {
        var outcomes = new JobOutcome[acks.Count];
        var claimed = new List<ClaimedAck>(acks.Count);
        var claimedAt = new List<int>(acks.Count);
        var notLive = new List<int>();
        lock (_index.Gate)
        {
            for (var i = 0; i < acks.Count; i++)
            {
                var ack = acks[i];
                var job = _index.Find(ack.Id);
                if (job is null) { notLive.Add(i); continue; }
                // At-least-once checkpoint: only the holder of the current lease may finish the job.
                if (job.State != JobState.Running || job.Settling || (ack.LeaseToken is not null && job.LeaseToken != ack.LeaseToken))
                {
                    outcomes[i] = JobOutcome.Stale(ack.Id, job.State);
                    continue;
                }
                if (ack.Kind == AckKind.Release)
                {
                    // Nothing ran, so nothing needs to be durable: the job simply waits again.
                    _index.Release(job, NowMs);
                    outcomes[i] = JobOutcome.Ok(ack.Id, job.State);
                    continue;
                }
                job.Settling = true;
                claimed.Add(new ClaimedAck(ack, job, job.Attempt, job.StartedMs));
                claimedAt.Add(i);
            }
        }
        foreach (var i in notLive) outcomes[i] = NotLive(acks[i].Id, state => JobOutcome.Stale(acks[i].Id, state));
        if (claimed.Count > 0)
        {
            var results = await Submit(new AckOp(claimed, _options.RetryPolicy), cancellationToken).ConfigureAwait(false);
            for (var k = 0; k < results.Length; k++) outcomes[claimedAt[k]] = results[k];
        }
        return outcomes;
    }

    public async ValueTask<JobOutcome> JobCancelAsync(long id, CancellationToken cancellationToken)
    {
        CancelOp? op = null;
        lock (_index.Gate)
        {
            var job = _index.Find(id);
            if (job is not null && !job.Settling)
            {
                job.Settling = true;
                op = new CancelOp(job, job.Attempt);
            }
            else if (job is not null)
            {
                return JobOutcome.Wrong(id, job.State, $"Job {id} is already finishing and cannot be cancelled.");
            }
        }
        if (op is null)
            return NotLive(id, state => JobOutcome.Wrong(id, state, $"Job {id} is already {state.ToWire()} and cannot be cancelled."));
        return await Submit(op, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<Job?> JobWaitFinishedAsync(long id, TimeSpan wait, CancellationToken cancellationToken)
    {
        TaskCompletionSource? waiter = null;
        lock (_index.Gate)
        {
            if (wait > TimeSpan.Zero && _index.Find(id) is not null) waiter = _index.AddFinishWaiter(id);
        }
        if (waiter is not null)
        {
            try
            {
                await waiter.Task.WaitAsync(wait, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Not finished in time: the caller gets the job as it is now.
            }
            finally
            {
                lock (_index.Gate) _index.RemoveFinishWaiter(id, waiter);
            }
        }
        return GetOne(id);
    }

    public async ValueTask<JobOutcome> JobRetryAsync(long id, CancellationToken cancellationToken) =>
        await Submit(new RetryOp(id), cancellationToken).ConfigureAwait(false);

    public async ValueTask<QueueInfo> QueueSetPausedAsync(string queue, bool paused, CancellationToken cancellationToken)
    {
        await Submit(new PauseOp(queue, paused), cancellationToken).ConfigureAwait(false);
        lock (_index.Gate)
        {
            return Info(_index.Queue(queue));
        }
    }

    private static QueueInfo Info(QueueLine line) => new(line.Name, line.Paused, line.Counts) { Settings = line.Settings };

    public async ValueTask<QueueInfo> QueueConfigureAsync(string queue, QueueSettings settings, CancellationToken cancellationToken)
    {
        await Submit(new ConfigureOp(queue, settings), cancellationToken).ConfigureAwait(false);
        lock (_index.Gate) return Info(_index.Queue(queue));
    }

    public async ValueTask<JobOutcome> JobDeleteAsync(long id, CancellationToken cancellationToken)
    {
        LiveJob? live;
        lock (_index.Gate)
        {
            live = _index.Find(id);
            if (live is not null)
            {
                if (live.State == JobState.Running || live.Settling)
                    return JobOutcome.Wrong(id, live.State, $"Job {id} is running; cancel it first, then delete it.");
                live.Settling = true;
            }
        }
        return await Submit(new DeleteOp(id, live), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<int> JobDeleteFinishedAsync(string queue, DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken) =>
        await Submit(new DeleteFinishedOp(queue, finishedBefore.ToUnixTimeMilliseconds(), limit), cancellationToken).ConfigureAwait(false);

    public async ValueTask<Schedule> ScheduleUpsertAsync(Schedule schedule, CancellationToken cancellationToken)
    {
        await Submit(new ScheduleOp<bool>((writer, now) =>
        {
            writer.UpsertSchedule(schedule, now);
            return true;
        }), cancellationToken).ConfigureAwait(false);
        return (await ScheduleListAsync(cancellationToken).ConfigureAwait(false)).Single(s => s.Name == schedule.Name);
    }

    public ValueTask<IReadOnlyList<Schedule>> ScheduleListAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<Schedule> schedules = Read(reader =>
        {
            var command = reader.Command(
                "SELECT name, cron, time_zone, queue, kind, payload, priority, max_attempts, tags, paused, created_at, updated_at, last_fired_for " +
                "FROM schedules ORDER BY name");
            var list = new List<Schedule>();
            using var r = command.ExecuteReader();
            while (r.Read())
            {
                list.Add(new Schedule
                {
                    Name = r.GetString(0),
                    Cron = r.GetString(1),
                    TimeZone = r.GetString(2),
                    Template = new NewJob
                    {
                        Queue = r.GetString(3),
                        Kind = r.GetString(4),
                        PayloadJson = r.IsDBNull(5) ? null : r.GetString(5),
                        Priority = r.GetInt32(6),
                        MaxAttempts = r.GetInt32(7),
                        Tags = r.IsDBNull(8) ? [] : RowMapper.ParseTags(r.GetString(8)),
                    },
                    Paused = r.GetInt64(9) != 0,
                    CreatedAt = RowMapper.FromMs(r.GetInt64(10)),
                    UpdatedAt = RowMapper.FromMs(r.GetInt64(11)),
                    LastFiredFor = r.IsDBNull(12) ? null : RowMapper.FromMs(r.GetInt64(12)),
                });
            }
            return list;
        });
        return ValueTask.FromResult(schedules);
    }

    public async ValueTask<bool> ScheduleDeleteAsync(string name, CancellationToken cancellationToken) =>
        await Submit(new ScheduleOp<bool>((writer, _) => writer.DeleteSchedule(name)), cancellationToken).ConfigureAwait(false);

    public async ValueTask ScheduleRecordFiredAsync(string name, DateTimeOffset occurrence, CancellationToken cancellationToken) =>
        await Submit(new ScheduleOp<bool>((writer, _) => writer.RecordFired(name, occurrence.ToUnixTimeMilliseconds())), cancellationToken)
            .ConfigureAwait(false);

    /// <summary>Stops taking writes, commits everything already queued, and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping.Cancel();
        await _maintenanceLoop.ConfigureAwait(false);
        _writes.Writer.TryComplete();
        await _writerLoop.ConfigureAwait(false);
        _writer.Dispose();
        while (_readers.TryTake(out var reader)) reader.Dispose();
        _stopping.Dispose();
        lock (_index.Gate)
        {
            foreach (var line in _index.Queues) line.Signal();
        }
    }
}
