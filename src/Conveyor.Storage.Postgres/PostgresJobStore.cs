using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Npgsql;

namespace Conveyor.Storage.Postgres;

/// <summary>
/// The shared store: several Conveyor servers on one PostgreSQL database, in their own schema.
/// <list type="bullet">
/// <item>Everything is durable rows, leases included (unlike SQLite's in-memory leases): a restarted server finds its
/// jobs still running with their leases, which expire through the reaper as usual.</item>
/// <item>Inserts from concurrent requests are folded into one transaction by a few writer loops (group commit): one
/// unnest INSERT and one fsync for the whole batch. The NOTIFYs for the other servers go out through <see cref="Notifier"/>,
/// which folds those of many batches into one small transaction.</item>
/// <item>Leases are one <c>FOR UPDATE SKIP LOCKED</c> statement; completions of an ack batch one statement.</item>
/// <item>Long polls wake on LISTEN/NOTIFY, and on this server's own writes at once; a wake goes to as many waiting leases as
/// can take the new jobs (<see cref="Wakeups"/>). Maintenance runs on the elected leader only (<see cref="LeaderLoop"/>).</item>
/// <item>Counts per queue and state come from a small counter table kept by statement triggers.</item>
/// <item>Queue limits (concurrency, rate) hold across servers: a lease from a limited queue locks the queue's row, so such
/// leases take turns; queues without limits keep the one-statement lease (see PostgresJobStore.Operations.cs).</item>
/// </list>
/// Every time is taken from <see cref="PostgresStoreOptions.TimeProvider"/> and passed to SQL as a parameter, so the
/// servers' clocks (not the database's) decide, exactly as the contract tests' fake clock does.
/// </summary>
public sealed partial class PostgresJobStore : IJobStore
{
    private const int MaintenanceBatch = 1000;
    private readonly PostgresStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly NpgsqlDataSource _db;
    private readonly string _schema;
    private readonly string _channel;
    private readonly Statements _sql;
    private readonly Wakeups _wakeups = new();
    // Bounded so a flood of producers waits instead of growing memory without limit; several writer loops read it.
    private readonly Channel<InsertOp> _inserts = Channel.CreateBounded<InsertOp>(
        new BoundedChannelOptions(8192) { FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task[] _writers;
    private readonly Notifier _notifier;
    private readonly Task _notifierLoop;
    private readonly Listener _listener;
    private readonly Task _listenerLoop;
    private readonly LeaderLoop? _leader;
    private readonly Task _leaderLoop;
    private readonly Task _resultPoller;
    private long _enqueued, _completed, _failed;
    private int _disposed;

    private PostgresJobStore(PostgresStoreOptions options, NpgsqlDataSource db, string dedicatedConnectionString)
    {
        _options = options;
        _time = options.TimeProvider;
        _db = db;
        _schema = options.Schema;
        _channel = Sql.Channel(_schema);
        _sql = new Statements(_schema);
        _writers = [.. Enumerable.Range(0, options.InsertWriters).Select(_ => Task.Run(InsertLoop))];
        // The listener's connection is named for the channel: that is how the other servers' notifiers see it listening.
        var listenerConnection = new NpgsqlConnectionStringBuilder(dedicatedConnectionString) { ApplicationName = Notifier.ListenerName(_channel) };
        _listener = new Listener(listenerConnection.ConnectionString, _channel, _wakeups, options.LeaderRetryInterval, OnNotification);
        _notifier = new Notifier(db, _sql.NotifyAsync, _channel, options.PeerCheckInterval, () => _listener.ProcessId);
        _notifierLoop = Task.Run(_notifier.RunAsync);
        _listenerLoop = Task.Run(() => _listener.RunAsync(_stopping.Token));
        if (options.RunMaintenanceLoop)
        {
            // Named, so an operator (and the failover test) can see which server leads: pg_stat_activity.application_name.
            var leaderConnection = new NpgsqlConnectionStringBuilder(dedicatedConnectionString);
            leaderConnection.ApplicationName ??= $"conveyor-leader-{Environment.ProcessId}";
            _leader = new LeaderLoop(leaderConnection.ConnectionString, _schema, options, RunMaintenanceAsync);
            _leaderLoop = Task.Run(() => _leader.RunAsync(_stopping.Token));
        }
        else
        {
            _leaderLoop = Task.CompletedTask;
        }
        _resultPoller = Task.Run(ResultPollLoop);
    }

    /// <summary>Connects, creates or migrates the schema (under an advisory lock), and starts the background loops.</summary>
    public static async Task<PostgresJobStore> OpenAsync(PostgresStoreOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = new NpgsqlConnectionStringBuilder(options.ConnectionString);
        // Prepared statements without asking: the hot statements are few and repeat all the time.
        if (builder.MaxAutoPrepare == 0) builder.MaxAutoPrepare = 64;
        // The store leaves no session state on a pooled connection (its settings and advisory locks are transaction-scoped;
        // LISTEN and the leader's session lock live on dedicated connections), so the reset Npgsql would otherwise prepend to
        // the next command after every checkout (SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *;
        // pg_advisory_unlock_all(); DISCARD SEQUENCES; DISCARD TEMP: seven statements) is pure cost. A transaction left open is
        // still rolled back when its connection goes back to the pool.
        builder.NoResetOnClose = true;
        var dedicated = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Pooling = false, MaxAutoPrepare = 0 };
        var db = NpgsqlDataSource.Create(builder.ConnectionString);
        try
        {
            await using (var connection = await db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
            {
                await Schema.MigrateAsync(connection, options.Schema, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            await db.DisposeAsync().ConfigureAwait(false);
            if (PgErrors.IsUnavailable(e)) throw PgErrors.Unavailable(e);
            throw;
        }
        return new PostgresJobStore(options, db, dedicated.ConnectionString);
    }

    /// <summary>True while this store holds the maintenance leadership.</summary>
    public bool IsLeader => _leader?.IsLeader ?? false;

    /// <summary>Completes once this store listens for other servers' notifications.</summary>
    public Task Listening => _listener.Listening;

    /// <summary>The schema this store lives in.</summary>
    public string SchemaName => _schema;

    private DateTimeOffset Now
    {
        get
        {
            // Milliseconds, like the SQLite store: what is written is exactly what is read back.
            var now = _time.GetUtcNow();
            return new DateTimeOffset(now.Ticks - now.Ticks % TimeSpan.TicksPerMillisecond, TimeSpan.Zero);
        }
    }

    private static DateTimeOffset Utc(DateTimeOffset at)
    {
        var utc = at.ToUniversalTime();
        return new DateTimeOffset(utc.Ticks - utc.Ticks % TimeSpan.TicksPerMillisecond, TimeSpan.Zero);
    }

    // ---- the store edge: provider errors translated, whole-transaction conflicts retried ---------------------------

    private async ValueTask<T> Guard<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await operation(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (PgErrors.IsRetryable(e) && attempt < 5)
            {
                // A deadlock or serialization failure rolled the transaction back whole: run it again.
            }
            catch (Exception e) when (PgErrors.IsUnavailable(e) && !cancellationToken.IsCancellationRequested)
            {
                throw PgErrors.Unavailable(e);
            }
        }
    }

    private NpgsqlCommand Command(NpgsqlConnection connection, string sql, NpgsqlTransaction? tx = null) => new(sql, connection, tx);

    // ---- inserts: group commit ---------------------------------------------------------------------------------

    public async ValueTask<IReadOnlyList<InsertedJob>> JobInsertManyAsync(IReadOnlyList<NewJob> jobs, CancellationToken cancellationToken)
    {
        if (jobs.Count == 0) return [];
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var op = new InsertOp(jobs);
        await _inserts.Writer.WriteAsync(op, cancellationToken).ConfigureAwait(false);
        // Once queued, the write happens: do not abandon it on cancellation, or the caller could not tell.
        var inserted = await op.Done.Task.ConfigureAwait(false);
        Interlocked.Add(ref _enqueued, inserted.Count(j => !j.Replayed));
        return inserted;
    }

    private async Task InsertLoop()
    {
        var reader = _inserts.Reader;
        var batch = new List<InsertOp>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            var count = 0;
            while (count < _options.MaxJobsPerCommit && reader.TryRead(out var op))
            {
                batch.Add(op);
                count += op.Jobs.Count;
            }
            if (batch.Count == 0) continue;
            if (await TryInsert(batch).ConfigureAwait(false)) continue;
            // One bad request must not sink the others that shared its transaction: retry each alone.
            foreach (var op in batch) await TryInsert([op]).ConfigureAwait(false);
        }
    }

    /// <summary>Commits the batch and answers its callers; false when a multi-op batch failed for a reason other than the connection.</summary>
    private async Task<bool> TryInsert(List<InsertOp> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await InsertBatch(batch).ConfigureAwait(false);
                return true;
            }
            catch (Exception e) when ((PgErrors.IsRetryable(e) || e is PostgresRetry) && attempt < 5)
            {
            }
            catch (Exception e) when (PgErrors.IsUnavailable(e))
            {
                // Not committed (or not known to be): every caller gets 503 and may retry.
                var error = PgErrors.Unavailable(e);
                foreach (var op in batch) op.Done.TrySetException(error);
                return true;
            }
            catch (Exception e) when (batch.Count == 1)
            {
                batch[0].Done.TrySetException(e);
                return true;
            }
            catch (Exception)
            {
                return false;
            }
        }
    }

    private async Task InsertBatch(List<InsertOp> batch)
    {
        var started = Stopwatch.GetTimestamp();
        var now = Now;
        var total = batch.Sum(op => op.Jobs.Count);
        var queues = new List<string>(total);
        var kinds = new List<string>(total);
        var states = new List<short>(total);
        var priorities = new List<int>(total);
        var runAts = new List<DateTimeOffset>(total);
        var maxAttempts = new List<int>(total);
        var payloads = new List<string?>(total);
        var keys = new List<string?>(total);
        var partitions = new List<string?>(total);
        var tags = new List<string?>(total);
        var traces = new List<string?>(total);
        var destinations = new List<string?>(total);
        // Where each request's job went: a row index, or the row of the first job with the same idempotency key.
        var rowOf = new int[total];
        var duplicateOf = new Dictionary<(string, string), int>();
        var partitionLocks = new SortedSet<string>(StringComparer.Ordinal);
        // Jobs made available per queue: that many lease waiters are woken here, and the other servers are notified.
        var woken = new Dictionary<string, int>(StringComparer.Ordinal);
        var flat = 0;
        foreach (var op in batch)
        {
            foreach (var job in op.Jobs)
            {
                if (job.IdempotencyKey is { } key)
                {
                    if (duplicateOf.TryGetValue((job.Queue, key), out var first))
                    {
                        rowOf[flat++] = -1 - first; // a repeat within this transaction replays the first
                        continue;
                    }
                    duplicateOf[(job.Queue, key)] = queues.Count;
                }
                rowOf[flat++] = queues.Count;
                var runAt = job.RunAt is { } at ? Utc(at) : now;
                var state = runAt > now ? JobState.Scheduled : JobState.Available;
                queues.Add(job.Queue);
                kinds.Add(job.Kind);
                states.Add((short)state);
                priorities.Add(job.Priority);
                runAts.Add(runAt);
                maxAttempts.Add(job.MaxAttempts);
                payloads.Add(job.PayloadJson);
                keys.Add(job.IdempotencyKey);
                partitions.Add(job.PartitionKey);
                tags.Add(job.Tags.Count == 0 ? null : JsonText.StringArray(job.Tags));
                traces.Add(job.TraceParent);
                destinations.Add(job.DestinationsJson);
                if (job.PartitionKey is { } partition) partitionLocks.Add(job.Queue + "\u001f" + partition);
                if (state == JobState.Available) woken[job.Queue] = woken.GetValueOrDefault(job.Queue) + 1;
            }
        }

        var ids = new long[queues.Count];
        var inserted = new bool[queues.Count];
        await using var connection = await _db.OpenConnectionAsync().ConfigureAwait(false);
        // One round trip: the commands of a batch run in one implicit transaction, committed at its end.
        await using (var command = new NpgsqlBatch(connection))
        {
            if (partitionLocks.Count > 0)
            {
                var lockPartitions = new NpgsqlBatchCommand(_sql.LockPartitions);
                lockPartitions.Parameters.AddWithValue("schema", _schema);
                lockPartitions.Parameters.AddWithValue("keys", partitionLocks.ToArray());
                command.BatchCommands.Add(lockPartitions);
            }
            var keyed = duplicateOf.Count > 0;
            var sql = keyed ? _sql.InsertMany : _sql.InsertManyNew;
            var insert = new NpgsqlBatchCommand(sql.Text);
            var p = insert.Parameters;
            sql.Add(p, "queue", queues.ToArray());
            sql.Add(p, "kind", kinds.ToArray());
            sql.Add(p, "state", states.ToArray());
            sql.Add(p, "priority", priorities.ToArray());
            sql.Add(p, "run_at", runAts.ToArray());
            sql.Add(p, "max_attempts", maxAttempts.ToArray());
            sql.Add(p, "payload", payloads.ToArray());
            if (keyed) sql.Add(p, "idempotency_key", keys.ToArray());
            sql.Add(p, "partition_key", partitions.ToArray());
            sql.Add(p, "tags", tags.ToArray());
            sql.Add(p, "trace_parent", traces.ToArray());
            sql.Add(p, "destinations", destinations.ToArray());
            sql.Add(p, "now", now);
            command.BatchCommands.Add(insert);
            await using var r = await command.ExecuteReaderAsync().ConfigureAwait(false);
            if (partitionLocks.Count > 0) await r.NextResultAsync().ConfigureAwait(false);
            if (keyed)
            {
                while (await r.ReadAsync().ConfigureAwait(false))
                {
                    var row = (int)r.GetInt64(0) - 1;
                    ids[row] = r.GetInt64(1);
                    inserted[row] = r.GetBoolean(2);
                }
            }
            else
            {
                // Every row was inserted (a statement without ON CONFLICT inserts all its rows or fails whole); the ids were
                // drawn in request order, so in ascending order they are the rows' ids.
                var returned = 0;
                while (await r.ReadAsync().ConfigureAwait(false)) ids[returned++] = r.GetInt64(0);
                Debug.Assert(returned == ids.Length);
                Array.Sort(ids);
                Array.Fill(inserted, true);
            }
            while (await r.NextResultAsync().ConfigureAwait(false)) { }
        }
        // Durability checkpoint: the batch is committed (the reader above completed the implicit transaction).

        var createdAt = new DateTimeOffset[queues.Count];
        Array.Fill(createdAt, now);
        var replayed = Enumerable.Range(0, queues.Count).Where(i => !inserted[i]).ToList();
        if (replayed.Count > 0)
        {
            // The key was taken before (maybe by another server a moment ago): answer with the existing job.
            await using var find = Command(connection, _sql.FindIdempotent);
            find.Parameters.AddWithValue("queue", replayed.Select(i => queues[i]).ToArray());
            find.Parameters.AddWithValue("key", replayed.Select(i => keys[i]!).ToArray());
            var existing = new Dictionary<(string, string), (long, DateTimeOffset)>();
            await using (var r = await find.ExecuteReaderAsync().ConfigureAwait(false))
            {
                while (await r.ReadAsync().ConfigureAwait(false))
                    existing[(r.GetString(0), r.GetString(1))] = (r.GetInt64(2), r.GetFieldValue<DateTimeOffset>(3));
            }
            foreach (var i in replayed)
            {
                // Gone already (deleted between the conflict and this read): let the whole batch run again.
                if (!existing.TryGetValue((queues[i], keys[i]!), out var found)) throw new PostgresRetry();
                (ids[i], createdAt[i]) = found;
            }
        }

        flat = 0;
        foreach (var op in batch)
        {
            var results = new InsertedJob[op.Jobs.Count];
            for (var k = 0; k < results.Length; k++)
            {
                var row = rowOf[flat++];
                results[k] = row >= 0
                    ? new InsertedJob(ids[row], !inserted[row], createdAt[row])
                    : new InsertedJob(ids[-1 - row], Replayed: true, createdAt[-1 - row]);
                if (!results[k].Replayed) ConveyorMetrics.JobEnqueued(op.Jobs[k].Queue, op.Jobs[k].Kind);
            }
            op.Done.TrySetResult(results);
        }
        foreach (var (queue, count) in woken) Wake(queue, count);
        ConveyorMetrics.StoreCommitted("postgres", batch.Count, Stopwatch.GetElapsedTime(started).TotalSeconds);
        // The other servers hear of it through the notifier, which folds the NOTIFYs of many batches together and sends
        // them off the writers' path (a notification is best effort: lost, the long polls find the jobs by their poll).
        if (woken.Count > 0) _notifier.Enqueue(woken.Keys);
    }

    /// <summary>
    /// Wakes lease waiters of the queue for <paramref name="jobs"/> jobs that became leasable: as many waiters as can take
    /// them, or every waiter of a queue with limits (whose leases take fewer than they ask for).
    /// </summary>
    private void Wake(string queue, int jobs)
    {
        if (_limitedQueues.ContainsKey(queue)) _wakeups.SignalQueue(queue);
        else _wakeups.SignalQueue(queue, jobs);
    }

    /// <summary>A notification from another server (or from a statement of this one): one waiter looks, and passes it on if it must.</summary>
    private void OnNotification(string queue, int processId)
    {
        // Sent by this server's notifier (its waiters were woken when the insert committed), or this listener's own greeting.
        if (processId == _notifier.ProcessId || processId == _listener.ProcessId) return;
        // No queue is named "": another server has just started listening and greets the others.
        if (queue.Length == 0) _notifier.PeerJoined();
        else Wake(queue, 1);
    }

    /// <summary>Notifying transactions this store's notifier sent, and insert batches it did not notify (no other server listened).</summary>
    internal (long Sent, long Skipped) NotificationCounts => _notifier.Counts;

    /// <summary>True when this store's notifier believes another server listens on its channel.</summary>
    internal bool PeersListening => _notifier.PeersListening;

    /// <summary>Long polls of the queue now waiting for a wake-up (tests wait for one before they enqueue).</summary>
    internal int LeaseWaiters(string queue) => _wakeups.QueueWaiters(queue);

    // ---- leases --------------------------------------------------------------------------------------------------

    public async ValueTask<IReadOnlyList<Job>> JobLeaseAvailableAsync(LeaseRequest request, CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + request.Wait;
        while (true)
        {
            // Register before looking, so a job that arrives between the look and the wait is not missed.
            var waiter = request.Wait > TimeSpan.Zero ? _wakeups.WaitForQueue(request.Queue, request.Max) : null;
            // A wake goes to as many waiters as can take the new jobs (Wakeups), so one that this waiter consumed must be
            // covered by a look that started after it and did not come back full; otherwise it is passed on to the next
            // waiter when this call ends. A full lease passes one on too: more jobs may be waiting. Null: an exception,
            // decided by whether a wake was consumed.
            bool? passOn = null;
            try
            {
                var (jobs, nextToken) = await Guard(ct => LeaseOnce(request, ct), cancellationToken).ConfigureAwait(false);
                if (jobs.Count > 0 || waiter is null)
                {
                    passOn = jobs.Count >= request.Max || waiter?.Task.IsCompleted == true;
                    return jobs;
                }
                var remaining = deadline - _time.GetUtcNow();
                if (remaining <= TimeSpan.Zero || _disposed != 0) return jobs;
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
                var timeout = Task.Delay(remaining, _time, wait.Token);
                var fallback = Task.Delay(_options.WakeupFallbackInterval, wait.Token);
                // A rate-limited queue: look again when its bucket holds a token (by the store's clock, which fills it).
                var refill = nextToken is { } refillIn && refillIn < remaining ? Task.Delay(refillIn, _time, wait.Token) : fallback;
                await Task.WhenAny(waiter.Task, timeout, fallback, refill).ConfigureAwait(false);
                await wait.CancelAsync().ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                if (_disposed != 0) return [];
                if (timeout.IsCompletedSuccessfully)
                {
                    var wokenBefore = waiter.Task.IsCompleted;
                    var last = (await Guard(ct => LeaseOnce(request, ct), cancellationToken).ConfigureAwait(false)).Jobs;
                    passOn = last.Count >= request.Max || (!wokenBefore && waiter.Task.IsCompleted);
                    return last;
                }
                passOn = false; // the next round looks again
            }
            finally
            {
                if (waiter is not null)
                {
                    _wakeups.CancelQueueWait(request.Queue, waiter);
                    if (passOn ?? waiter.Task.IsCompleted) Wake(request.Queue, 1);
                }
                else if (passOn == true)
                {
                    Wake(request.Queue, 1);
                }
            }
        }
    }

    /// <summary>One look: the leased jobs, and for a rate-limited queue that leased nothing, when its next token is due.</summary>
    private async Task<(List<Job> Jobs, TimeSpan? NextToken)> LeaseOnce(LeaseRequest request, CancellationToken cancellationToken)
    {
        var now = Now;
        await using var connection = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        List<Job> jobs;
        TimeSpan? nextToken = null;
        // A queue last seen with limits goes straight to the limited lease; any other tries the fast path first, which
        // says when the queue has limits after all (set on another server a moment ago).
        if (_limitedQueues.ContainsKey(request.Queue) || await LeaseFast(connection, request, now, cancellationToken).ConfigureAwait(false)
                is not { } fast)
        {
            (jobs, nextToken) = await LeaseLimited(connection, request, now, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            jobs = fast;
        }
        if (jobs.Count == 0) return (jobs, nextToken);
        foreach (var job in jobs) ConveyorMetrics.JobStarted(job.Queue, job.Kind, (now - job.RunAt).TotalSeconds);
        // Answer in lease order (priority, run_at, id); RETURNING has no order of its own.
        jobs.Sort(static (a, b) =>
        {
            var c = b.Priority.CompareTo(a.Priority);
            if (c != 0) return c;
            c = a.RunAt.CompareTo(b.RunAt);
            return c != 0 ? c : a.Id.CompareTo(b.Id);
        });
        return (jobs, null);
    }

    /// <summary>The one-statement lease of a queue without limits; null (nothing leased) when the queue has limits.</summary>
    private async Task<List<Job>?> LeaseFast(NpgsqlConnection connection, LeaseRequest request, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, _sql.Lease.Text);
        AddLeaseParameters(_sql.Lease, command.Parameters, request, now);
        var jobs = new List<Job>();
        var limited = false;
        await using (var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // Nothing leased comes back as one row of nulls carrying the flag alone.
                if (!r.IsDBNull(0)) jobs.Add(ToJob(r));
                limited = r.GetBoolean(LeaseLimitedColumn);
            }
        }
        if (!limited) return jobs;
        _limitedQueues.TryAdd(request.Queue, 0);
        return null;
    }

    /// <summary>The parameters of both lease statements (<see cref="Statements.LeaseParameters"/>), in their order.</summary>
    private static void AddLeaseParameters(PositionalSql sql, NpgsqlParameterCollection p, LeaseRequest request, DateTimeOffset now)
    {
        sql.Add(p, "queue", request.Queue);
        sql.Add(p, "max", request.Max);
        sql.Add(p, "owner", request.Worker);
        sql.Add(p, "token", Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)) + "-");
        sql.Add(p, "expires", now + request.LeaseDuration);
        sql.Add(p, "now", now);
    }

    public ValueTask<JobOutcome> JobHeartbeatAsync(long id, string leaseToken, TimeSpan extendBy, string? progressJson, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            var now = Now;
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.Heartbeat);
            command.Parameters.AddWithValue("id", id);
            command.Parameters.AddWithValue("token", leaseToken);
            command.Parameters.AddWithValue("expires", now + extendBy);
            command.Parameters.Add(new NpgsqlParameter<string?>("progress", NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = progressJson });
            if (await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1) return JobOutcome.Ok(id, JobState.Running);
            var states = await StatesOf(connection, [id], ct).ConfigureAwait(false);
            return states.TryGetValue(id, out var state) ? JobOutcome.Stale(id, state) : JobOutcome.NotFound(id);
        }, cancellationToken);

    // ---- acks ------------------------------------------------------------------------------------------------------

    public async ValueTask<IReadOnlyList<JobOutcome>> JobAckManyAsync(IReadOnlyList<AckRequest> acks, CancellationToken cancellationToken)
    {
        if (acks.Count == 0) return [];
        var onlyCompletes = acks.All(a => a.Kind == AckKind.Complete) && acks.Select(a => a.Id).Distinct().Count() == acks.Count;
        var outcomes = await Guard(ct => onlyCompletes ? CompleteMany(acks, ct) : AckInTransaction(acks, ct), cancellationToken)
            .ConfigureAwait(false);
        for (var i = 0; i < outcomes.Length; i++)
        {
            if (!outcomes[i].IsOk) continue;
            if (acks[i].Kind == AckKind.Complete) Interlocked.Increment(ref _completed);
            else if (acks[i].Kind == AckKind.Fail) Interlocked.Increment(ref _failed);
            if (outcomes[i].State!.Value.IsFinished()) _wakeups.SignalFinished(outcomes[i].Id);
        }
        return outcomes;
    }

    /// <summary>The happy path: one statement completes the whole batch, tokens checked in its WHERE clause.</summary>
    private async Task<JobOutcome[]> CompleteMany(IReadOnlyList<AckRequest> acks, CancellationToken cancellationToken)
    {
        var now = Now;
        var outcomes = new JobOutcome[acks.Count];
        var done = new HashSet<long>();
        HashSet<string>? freed = null;
        await using var connection = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (var batch = new NpgsqlBatch(connection))
        {
            // One round trip, one implicit transaction: the planner setting first (see JobsSql.PlanByKey), then the completes.
            batch.BatchCommands.Add(new NpgsqlBatchCommand(JobsSql.PlanByKey));
            var sql = _sql.CompleteMany;
            var command = new NpgsqlBatchCommand(sql.Text);
            sql.Add(command.Parameters, "ids", acks.Select(a => a.Id).ToArray());
            sql.Add(command.Parameters, "tokens", acks.Select(a => a.LeaseToken).ToArray());
            sql.Add(command.Parameters, "results", acks.Select(a => a.ResultJson).ToArray());
            sql.Add(command.Parameters, "now", now);
            sql.Add(command.Parameters, "channel", _channel);
            batch.BatchCommands.Add(command);
            await using var r = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await r.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                done.Add(r.GetInt64(0));
                var startedAt = r.IsDBNull(3) ? now : r.GetFieldValue<DateTimeOffset>(3);
                var queue = r.GetString(1);
                ConveyorMetrics.JobFinishedAttempt(queue, r.GetString(2), JobState.Completed, (now - startedAt).TotalSeconds);
                // A slot under the queue's concurrency limit is free (other servers hear the statement's NOTIFY).
                if (_limitedQueues.ContainsKey(queue)) (freed ??= new HashSet<string>(StringComparer.Ordinal)).Add(queue);
            }
        }
        // Durability checkpoint: the completions are committed.
        if (freed is not null) foreach (var queue in freed) _wakeups.SignalQueue(queue);
        var missing = acks.Where(a => !done.Contains(a.Id)).Select(a => a.Id).ToArray();
        var states = missing.Length == 0 ? [] : await StatesOf(connection, missing, cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < acks.Count; i++)
        {
            var id = acks[i].Id;
            outcomes[i] = done.Contains(id) ? JobOutcome.Ok(id, JobState.Completed)
                : states.TryGetValue(id, out var state) ? JobOutcome.Stale(id, state)
                : JobOutcome.NotFound(id);
        }
        return outcomes;
    }

    private sealed class AckRow
    {
        public JobState State;
        public string? Token;
        public int Attempt;
        public int MaxAttempts;
        public DateTimeOffset StartedAt;
        public required string Queue;
        public required string Kind;
        public string? PartitionKey;
        public DateTimeOffset RunAt;
        public bool Capped;
    }

    /// <summary>The general path: lock the rows in id order, decide each ack in request order in memory, write in one batch.</summary>
    private async Task<JobOutcome[]> AckInTransaction(IReadOnlyList<AckRequest> acks, CancellationToken cancellationToken)
    {
        var now = Now;
        var outcomes = new JobOutcome[acks.Count];
        await using var connection = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var rows = new Dictionary<long, AckRow>();
        await using (var select = Command(connection, _sql.LockForAck, tx))
        {
            select.Parameters.AddWithValue("ids", acks.Select(a => a.Id).Distinct().ToArray());
            await using var r = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows[r.GetInt64(0)] = new AckRow
                {
                    State = (JobState)r.GetInt16(1),
                    Token = r.IsDBNull(2) ? null : r.GetString(2),
                    Attempt = r.GetInt32(3),
                    MaxAttempts = r.GetInt32(4),
                    StartedAt = r.IsDBNull(5) ? now : r.GetFieldValue<DateTimeOffset>(5),
                    Queue = r.GetString(6),
                    Kind = r.GetString(7),
                    PartitionKey = r.IsDBNull(8) ? null : r.GetString(8),
                    RunAt = r.GetFieldValue<DateTimeOffset>(9),
                    Capped = r.GetBoolean(10),
                };
            }
        }

        var completes = (Ids: new List<long>(), Results: new List<string?>());
        var retries = (Ids: new List<long>(), States: new List<short>(), RunAts: new List<DateTimeOffset>(), Errors: new List<string>(), Results: new List<string?>());
        var deads = (Ids: new List<long>(), Errors: new List<string>(), Results: new List<string?>());
        var releases = new List<long>();
        var events = new EventRows();
        var woken = new HashSet<string>(StringComparer.Ordinal);
        var finished = new List<(AckRow Row, JobState State)>();
        for (var i = 0; i < acks.Count; i++)
        {
            var ack = acks[i];
            if (!rows.TryGetValue(ack.Id, out var row))
            {
                outcomes[i] = JobOutcome.NotFound(ack.Id);
                continue;
            }
            // At-least-once checkpoint: only the holder of the current lease may finish the job.
            if (row.State != JobState.Running || (ack.LeaseToken is not null && row.Token != ack.LeaseToken))
            {
                outcomes[i] = JobOutcome.Stale(ack.Id, row.State);
                continue;
            }
            switch (ack.Kind)
            {
                case AckKind.Complete:
                    completes.Ids.Add(ack.Id);
                    completes.Results.Add(ack.ResultJson);
                    row.State = JobState.Completed;
                    break;
                case AckKind.Release:
                    // Nothing ran: the job waits again and the attempt is not counted.
                    releases.Add(ack.Id);
                    row.State = JobState.Available;
                    row.Attempt--;
                    woken.Add(row.Queue);
                    break;
                default:
                    var message = ack.Error ?? "failed";
                    var error = JsonText.ErrorEntry(row.Attempt, now, message, ack.Stack);
                    var decision = JobTransitions.OnFail(row.Attempt, row.MaxAttempts, ack.Dead, ack.RetryIn, now, _options.RetryPolicy);
                    events.Add(ack.Id, row.StartedAt, JobEventTypes.Started, JobState.Running, row.Attempt, null);
                    if (decision.NextState == JobState.Dead)
                    {
                        deads.Ids.Add(ack.Id);
                        deads.Errors.Add(error);
                        deads.Results.Add(ack.ResultJson);
                        row.State = JobState.Dead;
                    }
                    else
                    {
                        var runAt = Utc(decision.RunAt!.Value);
                        var next = JobTransitions.Waiting(runAt, now);
                        retries.Ids.Add(ack.Id);
                        retries.States.Add((short)next);
                        retries.RunAts.Add(runAt);
                        retries.Errors.Add(error);
                        retries.Results.Add(ack.ResultJson);
                        row.State = next;
                        row.Token = null;
                        if (next == JobState.Available) woken.Add(row.Queue);
                    }
                    events.Add(ack.Id, now, JobEventTypes.Failed, row.State, row.Attempt, message);
                    break;
            }
            if (ack.Kind != AckKind.Release)
                ConveyorMetrics.JobFinishedAttempt(row.Queue, row.Kind, row.State, (now - row.StartedAt).TotalSeconds);
            if (row.State == JobState.Dead) ConveyorMetrics.JobDead(row.Queue, row.Kind);
            if (row.State.IsFinished() && row.PartitionKey is not null) woken.Add(row.Queue);
            // The job left running: one more may start under the queue's concurrency limit.
            if (row.Capped) woken.Add(row.Queue);
            outcomes[i] = JobOutcome.Ok(ack.Id, row.State);
        }

        await using (var batch = new NpgsqlBatch(connection, tx))
        {
            if (completes.Ids.Count > 0)
            {
                var c = Add(batch, _sql.CompleteSet, now);
                c.Parameters.AddWithValue("ids", completes.Ids.ToArray());
                c.Parameters.AddWithValue("results", completes.Results.ToArray());
            }
            if (retries.Ids.Count > 0)
            {
                var c = Add(batch, _sql.RetrySet, now);
                c.Parameters.AddWithValue("ids", retries.Ids.ToArray());
                c.Parameters.AddWithValue("states", retries.States.ToArray());
                c.Parameters.AddWithValue("run_ats", retries.RunAts.ToArray());
                c.Parameters.AddWithValue("errors", retries.Errors.ToArray());
                c.Parameters.AddWithValue("results", retries.Results.ToArray());
            }
            if (deads.Ids.Count > 0)
            {
                var c = Add(batch, _sql.DeadSet, now);
                c.Parameters.AddWithValue("ids", deads.Ids.ToArray());
                c.Parameters.AddWithValue("errors", deads.Errors.ToArray());
                c.Parameters.AddWithValue("results", deads.Results.ToArray());
            }
            if (releases.Count > 0)
            {
                var c = Add(batch, _sql.ReleaseSet, now);
                c.Parameters.AddWithValue("ids", releases.ToArray());
            }
            if (events.Count > 0) batch.BatchCommands.Add(events.Command(_sql.InsertEvents));
            if (woken.Count > 0) batch.BatchCommands.Add(NotifyCommand(woken));
            if (batch.BatchCommands.Count > 0) await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        // Durability checkpoint: completes and fails are committed.
        foreach (var queue in woken) _wakeups.SignalQueue(queue);
        return outcomes;
    }

    private static NpgsqlBatchCommand Add(NpgsqlBatch batch, string sql, DateTimeOffset now)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddWithValue("now", now);
        batch.BatchCommands.Add(command);
        return command;
    }

    private NpgsqlBatchCommand NotifyCommand(IEnumerable<string> queues)
    {
        var notify = new NpgsqlBatchCommand(_sql.Notify);
        notify.Parameters.AddWithValue("channel", _channel);
        notify.Parameters.AddWithValue("queues", queues.ToArray());
        return notify;
    }

    /// <summary>Event rows gathered for one multi-row insert.</summary>
    private sealed class EventRows
    {
        private readonly List<long> _ids = [];
        private readonly List<DateTimeOffset> _ats = [];
        private readonly List<string> _types = [];
        private readonly List<short> _states = [];
        private readonly List<int> _attempts = [];
        private readonly List<string?> _messages = [];

        public int Count => _ids.Count;

        public void Add(long id, DateTimeOffset at, string type, JobState state, int attempt, string? message)
        {
            _ids.Add(id);
            _ats.Add(at);
            _types.Add(type);
            _states.Add((short)state);
            _attempts.Add(attempt);
            _messages.Add(message);
        }

        public NpgsqlBatchCommand Command(string sql)
        {
            var command = new NpgsqlBatchCommand(sql);
            command.Parameters.AddWithValue("ids", _ids.ToArray());
            command.Parameters.AddWithValue("ats", _ats.ToArray());
            command.Parameters.AddWithValue("types", _types.ToArray());
            command.Parameters.AddWithValue("states", _states.ToArray());
            command.Parameters.AddWithValue("attempts", _attempts.ToArray());
            command.Parameters.AddWithValue("messages", _messages.ToArray());
            return command;
        }
    }

    public ValueTask<JobOutcome> JobCancelAsync(long id, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using (var command = Command(connection, _sql.Cancel))
            {
                command.Parameters.AddWithValue("id", id);
                command.Parameters.AddWithValue("now", Now);
                command.Parameters.AddWithValue("channel", _channel);
                if (await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null)
                {
                    _wakeups.SignalFinished(id);
                    return JobOutcome.Ok(id, JobState.Cancelled);
                }
            }
            var states = await StatesOf(connection, [id], ct).ConfigureAwait(false);
            return states.TryGetValue(id, out var state)
                ? JobOutcome.Wrong(id, state, $"Job {id} is already {state.ToWire()} and cannot be cancelled.")
                : JobOutcome.NotFound(id);
        }, cancellationToken);

    public ValueTask<JobOutcome> JobRetryAsync(long id, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            var now = Now;
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            JobState state;
            await using (var select = Command(connection, _sql.LockOne, tx))
            {
                select.Parameters.AddWithValue("id", id);
                if (await select.ExecuteScalarAsync(ct).ConfigureAwait(false) is not short stored) return JobOutcome.NotFound(id);
                state = (JobState)stored;
            }
            if (!JobTransitions.CanRetryManually(state))
                return JobOutcome.Wrong(id, state, $"Job {id} is {state.ToWire()}; only dead or cancelled jobs can be retried.");
            string queue;
            await using (var requeue = Command(connection, _sql.Requeue, tx))
            {
                requeue.Parameters.AddWithValue("id", id);
                requeue.Parameters.AddWithValue("now", now);
                queue = (string)(await requeue.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            }
            await using (var batch = new NpgsqlBatch(connection, tx))
            {
                var retried = Add(batch, _sql.RetriedEvent, now);
                retried.Parameters.AddWithValue("id", id);
                retried.Parameters.AddWithValue("message", $"retried by hand after it was {state.ToWire()}");
                batch.BatchCommands.Add(NotifyCommand([queue]));
                await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            await tx.CommitAsync(ct).ConfigureAwait(false);
            _wakeups.SignalQueue(queue);
            return JobOutcome.Ok(id, JobState.Available);
        }, cancellationToken);

    // ---- RPC result waits ----------------------------------------------------------------------------------------

    public async ValueTask<Job?> JobWaitFinishedAsync(long id, TimeSpan wait, CancellationToken cancellationToken)
    {
        if (wait <= TimeSpan.Zero) return await JobGetAsync(id, cancellationToken).ConfigureAwait(false);
        // Register first: a finish between the read and the wait still wakes us.
        var waiter = _wakeups.WaitForFinish(id);
        // The clock starts now, before the first read: the wait is measured from the call.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        var timeout = Task.Delay(wait, _time, stop.Token);
        try
        {
            var job = await JobGetAsync(id, cancellationToken).ConfigureAwait(false);
            if (job is null || job.State.IsFinished()) return job;
            // Not finished in time: the caller gets the job as it is then.
            await Task.WhenAny(waiter.Task, timeout).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            _wakeups.CancelFinishWait(id, waiter);
        }
        return await JobGetAsync(id, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Jobs finished through other servers are found by one small query for all waited ids, while there are any.</summary>
    private async Task ResultPollLoop()
    {
        using var timer = new PeriodicTimer(_options.ResultPollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                var ids = _wakeups.WaitedJobIds();
                if (ids.Length == 0) continue;
                try
                {
                    await using var connection = await _db.OpenConnectionAsync(_stopping.Token).ConfigureAwait(false);
                    await using var command = Command(connection, _sql.FinishedAmong);
                    command.Parameters.AddWithValue("ids", ids);
                    await using var r = await command.ExecuteReaderAsync(_stopping.Token).ConfigureAwait(false);
                    while (await r.ReadAsync(_stopping.Token).ConfigureAwait(false)) _wakeups.SignalFinished(r.GetInt64(0));
                }
                catch (Exception e) when (PgErrors.IsUnavailable(e))
                {
                    // Postgres is away; waits simply run to their end.
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    // ---- maintenance (the leader runs it; tests call it) ------------------------------------------------------------

    /// <summary>Promotes due scheduled jobs and expires lapsed leases once. The leader's loop calls this; so do tests.</summary>
    public Task RunMaintenanceAsync(CancellationToken cancellationToken = default) =>
        Guard<int>(async ct =>
        {
            var now = Now;
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            int promoted;
            do
            {
                await using var command = Command(connection, _sql.PromoteDue);
                command.Parameters.AddWithValue("now", now);
                command.Parameters.AddWithValue("limit", MaintenanceBatch);
                command.Parameters.AddWithValue("channel", _channel);
                promoted = (int)(long)(await command.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            } while (promoted == MaintenanceBatch);

            var tail = JsonText.ErrorTail(now, "lease expired");
            int expired;
            do
            {
                expired = 0;
                await using var command = Command(connection, _sql.ExpireLeases);
                command.Parameters.AddWithValue("now", now);
                command.Parameters.AddWithValue("limit", MaintenanceBatch);
                command.Parameters.AddWithValue("channel", _channel);
                command.Parameters.AddWithValue("error_tail", tail);
                await using var r = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                {
                    expired++;
                    var state = (JobState)r.GetInt16(3);
                    if (state == JobState.Dead)
                    {
                        ConveyorMetrics.JobDead(r.GetString(1), r.GetString(2));
                        _wakeups.SignalFinished(r.GetInt64(0));
                    }
                    else
                    {
                        _wakeups.SignalQueue(r.GetString(1));
                    }
                }
            } while (expired == MaintenanceBatch);
            return 0;
        }, cancellationToken).AsTask();

    // ---- reads -------------------------------------------------------------------------------------------------------

    private static async Task<List<Job>> ReadJobs(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var jobs = new List<Job>();
        await using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) jobs.Add(ToJob(r));
        return jobs;
    }

    private static Job ToJob(NpgsqlDataReader r)
    {
        var state = (JobState)r.GetInt16(3);
        return new Job
        {
            Id = r.GetInt64(0),
            Queue = r.GetString(1),
            Kind = r.GetString(2),
            State = state,
            PayloadJson = r.IsDBNull(4) ? null : r.GetString(4),
            Priority = r.GetInt32(5),
            RunAt = r.GetFieldValue<DateTimeOffset>(6),
            Attempt = r.GetInt32(7),
            MaxAttempts = r.GetInt32(8),
            IdempotencyKey = r.IsDBNull(9) ? null : r.GetString(9),
            PartitionKey = r.IsDBNull(10) ? null : r.GetString(10),
            Tags = r.IsDBNull(11) ? [] : r.GetFieldValue<string[]>(11),
            ResultJson = r.IsDBNull(12) ? null : r.GetString(12),
            ErrorsJson = r.IsDBNull(13) ? null : r.GetString(13),
            TraceParent = r.IsDBNull(14) ? null : r.GetString(14),
            CreatedAt = r.GetFieldValue<DateTimeOffset>(15),
            UpdatedAt = r.GetFieldValue<DateTimeOffset>(16),
            StartedAt = r.IsDBNull(17) ? null : r.GetFieldValue<DateTimeOffset>(17),
            FinishedAt = r.IsDBNull(18) ? null : r.GetFieldValue<DateTimeOffset>(18),
            Lease = state == JobState.Running && !r.IsDBNull(19)
                ? new JobLease(r.GetString(19), r.IsDBNull(20) ? null : r.GetString(20), r.GetFieldValue<DateTimeOffset>(21))
                : null,
            ProgressJson = r.IsDBNull(22) ? null : r.GetString(22),
            DestinationsJson = r.IsDBNull(23) ? null : r.GetString(23),
        };
    }

    private async Task<Dictionary<long, JobState>> StatesOf(NpgsqlConnection connection, long[] ids, CancellationToken cancellationToken)
    {
        var states = new Dictionary<long, JobState>();
        await using var command = Command(connection, _sql.StatesByIds);
        command.Parameters.AddWithValue("ids", ids);
        await using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) states[r.GetInt64(0)] = (JobState)r.GetInt16(1);
        return states;
    }

    public ValueTask<Job?> JobGetAsync(long id, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.ById);
            command.Parameters.AddWithValue("id", id);
            return (await ReadJobs(command, ct).ConfigureAwait(false)).FirstOrDefault();
        }, cancellationToken);

    public ValueTask<IReadOnlyList<Job>> JobGetManyAsync(IReadOnlyList<long> ids, CancellationToken cancellationToken)
    {
        if (ids.Count == 0) return ValueTask.FromResult<IReadOnlyList<Job>>([]);
        return Guard<IReadOnlyList<Job>>(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.ByIds);
            command.Parameters.AddWithValue("ids", ids.ToArray());
            return await ReadJobs(command, ct).ConfigureAwait(false);
        }, cancellationToken);
    }

    public ValueTask<IReadOnlyList<JobEvent>?> JobEventsAsync(long id, CancellationToken cancellationToken) =>
        Guard<IReadOnlyList<JobEvent>?>(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            Job? job;
            await using (var command = Command(connection, _sql.ById))
            {
                command.Parameters.AddWithValue("id", id);
                job = (await ReadJobs(command, ct).ConfigureAwait(false)).FirstOrDefault();
            }
            if (job is null) return null;
            var events = new List<JobEvent>
            {
                new(job.CreatedAt, JobEventTypes.Created, job.RunAt > job.CreatedAt ? JobState.Scheduled : JobState.Available, 0, null),
            };
            await using (var command = Command(connection, _sql.EventsByJob))
            {
                command.Parameters.AddWithValue("id", id);
                await using var r = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                {
                    events.Add(new JobEvent(r.GetFieldValue<DateTimeOffset>(0), r.GetString(1), (JobState)r.GetInt16(2), r.GetInt32(3),
                        r.IsDBNull(4) ? null : r.GetString(4)));
                }
            }
            // The happy path is read off the row itself: the current attempt's start and the completion.
            if (job.StartedAt is { } started && job.State is JobState.Running or JobState.Completed)
                events.Add(new JobEvent(started, JobEventTypes.Started, JobState.Running, job.Attempt, job.Lease?.Owner));
            if (job.State == JobState.Completed && job.FinishedAt is { } finished)
                events.Add(new JobEvent(finished, JobEventTypes.Completed, JobState.Completed, job.Attempt, null));
            return events.OrderBy(e => e.At).ToList(); // stable: equal times keep their written order
        }, cancellationToken);

    public ValueTask<JobPage> JobSearchAsync(JobQuery query, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            var limit = Math.Clamp(query.Limit, 1, JobLimits.MaxSearchLimit);
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.Search(query));
            command.Parameters.AddWithValue("before", query.BeforeId ?? long.MaxValue);
            command.Parameters.AddWithValue("limit", limit);
            if (query.Queue is not null) command.Parameters.AddWithValue("queue", query.Queue);
            if (query.State is { } state) command.Parameters.AddWithValue("state", (short)state);
            if (query.Kind is not null) command.Parameters.AddWithValue("kind", query.Kind);
            if (query.Tag is not null) command.Parameters.AddWithValue("tag", query.Tag);
            if (query.Text is not null) command.Parameters.AddWithValue("text", query.Text);
            var jobs = await ReadJobs(command, ct).ConfigureAwait(false);
            return new JobPage(jobs, jobs.Count == limit ? jobs[^1].Id : null);
        }, cancellationToken);

    public ValueTask<IReadOnlyList<QueueInfo>> QueueListAsync(CancellationToken cancellationToken) =>
        Guard<IReadOnlyList<QueueInfo>>(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            return await ListQueues(connection, null, ct).ConfigureAwait(false);
        }, cancellationToken);

    private async Task<List<QueueInfo>> ListQueues(NpgsqlConnection connection, string? name, CancellationToken cancellationToken)
    {
        var queues = new SortedDictionary<string, (bool Paused, long[] Counts, QueueSettings Settings)>(StringComparer.Ordinal);
        await using var command = Command(connection, _sql.ListQueues);
        command.Parameters.Add(new NpgsqlParameter<string?>("name", NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = name });
        await using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var queue = r.GetString(0);
            if (!queues.TryGetValue(queue, out var entry)) queues[queue] = entry = (r.GetBoolean(1), new long[6], ReadSettings(r, 4));
            if (!r.IsDBNull(2)) entry.Counts[r.GetInt16(2)] += r.GetInt64(3);
        }
        return queues.Select(q => new QueueInfo(q.Key, q.Value.Paused,
            new StateCounts(q.Value.Counts[0], q.Value.Counts[1], q.Value.Counts[2], q.Value.Counts[3], q.Value.Counts[4], q.Value.Counts[5]))
            { Settings = q.Value.Settings })
            .ToList();
    }

    public ValueTask<QueueInfo> QueueSetPausedAsync(string queue, bool paused, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using (var batch = new NpgsqlBatch(connection))
            {
                var set = Add(batch, _sql.SetPaused, Now);
                set.Parameters.AddWithValue("name", queue);
                set.Parameters.AddWithValue("paused", paused);
                if (!paused) batch.BatchCommands.Add(NotifyCommand([queue]));
                await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            if (!paused) _wakeups.SignalQueue(queue);
            return (await ListQueues(connection, queue, ct).ConfigureAwait(false)).Single();
        }, cancellationToken);

    public async ValueTask<StoreStats> StatsAsync(CancellationToken cancellationToken)
    {
        var queues = await QueueListAsync(cancellationToken).ConfigureAwait(false);
        return new StoreStats(queues, Interlocked.Read(ref _enqueued), Interlocked.Read(ref _completed), Interlocked.Read(ref _failed));
    }

    /// <summary>Stops taking inserts, commits those already queued, leaves the leadership and closes the connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _inserts.Writer.TryComplete();
        await Task.WhenAll(_writers).ConfigureAwait(false);
        // The last inserts' notifications go out before the pool closes.
        _notifier.Complete();
        await _notifierLoop.ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        _wakeups.SignalAllQueues();
        await Task.WhenAll(_listenerLoop, _leaderLoop, _resultPoller).ConfigureAwait(false);
        await _db.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>One caller's insert request waiting for the group commit.</summary>
    private sealed class InsertOp(IReadOnlyList<NewJob> jobs)
    {
        public IReadOnlyList<NewJob> Jobs { get; } = jobs;
        public TaskCompletionSource<IReadOnlyList<InsertedJob>> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Thrown inside a transaction body to run it again (as a deadlock would).</summary>
    private sealed class PostgresRetry() : Exception("retry");
}

/// <summary>The store's SQL with its schema filled in, built once per store.</summary>
internal sealed class Statements(string schema)
{
    public readonly string ById = Sql.For(schema, JobsSql.ById);
    public readonly string ByIds = Sql.For(schema, JobsSql.ByIds);
    public readonly string StatesByIds = Sql.For(schema, JobsSql.StatesByIds);
    public readonly string FinishedAmong = Sql.For(schema, JobsSql.FinishedAmong);
    public readonly string LockPartitions = Sql.For(schema, JobsSql.LockPartitions);
    public readonly PositionalSql InsertMany = new(schema, JobsSql.InsertMany, InsertParameters(keyed: true));
    public readonly PositionalSql InsertManyNew = new(schema, JobsSql.InsertManyNew, InsertParameters(keyed: false));
    public readonly string FindIdempotent = Sql.For(schema, JobsSql.FindIdempotent);
    public readonly string Notify = Sql.For(schema, JobsSql.Notify);
    public readonly string NotifyAsync = Sql.For(schema, JobsSql.NotifyAsync);
    public static readonly string[] LeaseParameters = ["queue", "max", "owner", "token", "expires", "now"];
    public readonly PositionalSql Lease = new(schema, JobsSql.Lease, LeaseParameters);
    public readonly string Heartbeat = Sql.For(schema, JobsSql.Heartbeat);
    public readonly PositionalSql CompleteMany = new(schema, JobsSql.CompleteMany, "ids", "tokens", "results", "now", "channel");
    public readonly string LockForAck = Sql.For(schema, JobsSql.LockForAck);
    public readonly string CompleteSet = Sql.For(schema, JobsSql.CompleteSet);
    public readonly string RetrySet = Sql.For(schema, JobsSql.RetrySet);
    public readonly string DeadSet = Sql.For(schema, JobsSql.DeadSet);
    public readonly string ReleaseSet = Sql.For(schema, JobsSql.ReleaseSet);
    public readonly string Cancel = Sql.For(schema, JobsSql.Cancel);
    public readonly string LockOne = Sql.For(schema, JobsSql.LockOne);
    public readonly string Requeue = Sql.For(schema, JobsSql.Requeue);
    public readonly string PromoteDue = Sql.For(schema, JobsSql.PromoteDue);
    public readonly string ExpireLeases = Sql.For(schema, JobsSql.ExpireLeases);
    public readonly string InsertEvents = Sql.For(schema, EventsSql.InsertMany);
    public readonly string EventsByJob = Sql.For(schema, EventsSql.ByJob);
    public readonly string RetriedEvent = Sql.For(schema, EventsSql.Retried);
    public readonly string ListQueues = Sql.For(schema, QueuesSql.List);
    public readonly string SetPaused = Sql.For(schema, QueuesSql.SetPaused);
    public readonly string Configure = Sql.For(schema, QueuesSql.Configure);
    public readonly string LockLimitedQueue = Sql.For(schema, JobsSql.LockLimitedQueue);
    public readonly PositionalSql LeaseLimited = new(schema, JobsSql.LeaseLimited, LeaseParameters);
    public readonly string Delete = Sql.For(schema, JobsSql.Delete);
    public readonly string DeleteFinished = Sql.For(schema, JobsSql.DeleteFinished);
    public readonly string ScheduleUpsert = Sql.For(schema, SchedulesSql.Upsert);
    public readonly string ScheduleList = Sql.For(schema, SchedulesSql.List);
    public readonly string ScheduleDelete = Sql.For(schema, SchedulesSql.Delete);
    public readonly string ScheduleRecordFired = Sql.For(schema, SchedulesSql.RecordFired);

    public string Search(JobQuery query) => Sql.For(schema, JobsSql.Search(query));

    private static string[] InsertParameters(bool keyed) => keyed
        ? ["queue", "kind", "state", "priority", "run_at", "max_attempts", "payload", "idempotency_key", "partition_key", "tags",
            "trace_parent", "destinations", "now"]
        : ["queue", "kind", "state", "priority", "run_at", "max_attempts", "payload", "partition_key", "tags", "trace_parent",
            "destinations", "now"];
}

/// <summary>The small JSON texts the store writes itself.</summary>
internal static class JsonText
{
    public static string StringArray(IReadOnlyList<string> values) => StoredJson.StringArray(values);

    public static string ErrorEntry(int attempt, DateTimeOffset at, string message, string? stack) => StoredJson.ErrorEntry(attempt, at, message, stack);

    /// <summary>An error entry after its attempt number: <c>"at":…,"message":…,"stack":null}</c> (the reaper adds the head in SQL).</summary>
    public static string ErrorTail(DateTimeOffset at, string message)
    {
        var entry = ErrorEntry(0, at, message, null);
        return entry[(entry.IndexOf(',', StringComparison.Ordinal) + 1)..];
    }
}
