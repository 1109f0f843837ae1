using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;

namespace Conveyor.Storage.Postgres;

/// <summary>
/// Deletion, retention, queue limits and schedules.
/// <list type="bullet">
/// <item>Limits hold across every server on the database. A lease from a queue with limits is one batch (one round trip,
/// one implicit transaction): lock the queue row, then lease at most max_running minus the running jobs and at most the
/// whole tokens of the queue's bucket, and spend them. The lock makes such leases take turns, and the lease statement's
/// fresh snapshot (taken after the lock) sees every lease committed before it. Queues without limits never touch the lock.</item>
/// <item>The bucket lives on the queue row (tokens as of tokens_at) and is refilled from the servers' clocks, passed as
/// parameters like every time. Like a lease, its spending is committed without waiting for the flush: a database crash can
/// forget the last moments' spending, and a few more jobs start.</item>
/// <item>A lease on the fast path that finds limits set a moment ago (on any server) switches this store to the limited lease
/// for that queue; a limited lease that finds them removed switches back. One fast lease in flight while limits are first
/// set can still start jobs beyond them, once.</item>
/// <item>Long polls on a limited queue wait for a wake-up: a finish of one of its jobs (NOTIFY from the finishing statement),
/// or, when the rate limit held them back, the time its next token is due.</item>
/// </list>
/// </summary>
public sealed partial class PostgresJobStore
{
    /// <summary>Index of the "queue has limits" flag after the job columns of <see cref="JobsSql.Lease"/>.</summary>
    private const int LeaseLimitedColumn = 24;

    /// <summary>Queues last seen with a concurrency or rate limit (a set: the value is unused). Few entries: limited queues only.</summary>
    private readonly ConcurrentDictionary<string, byte> _limitedQueues = new(StringComparer.Ordinal);

    // ---- leases from limited queues ------------------------------------------------------------------------------

    private async Task<(List<Job> Jobs, TimeSpan? NextToken)> LeaseLimited(
        NpgsqlConnection connection, LeaseRequest request, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var jobs = new List<Job>();
        (bool Paused, double? Rate, double? Tokens, DateTimeOffset? TokensAt)? bucket = null;
        await using (var batch = new NpgsqlBatch(connection))
        {
            var lockQueue = new NpgsqlBatchCommand(_sql.LockLimitedQueue);
            lockQueue.Parameters.AddWithValue("queue", request.Queue);
            batch.BatchCommands.Add(lockQueue);
            var lease = new NpgsqlBatchCommand(_sql.LeaseLimited.Text);
            AddLeaseParameters(_sql.LeaseLimited, lease.Parameters, request, now);
            batch.BatchCommands.Add(lease);
            await using var r = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                bucket = (r.GetBoolean(0), r.IsDBNull(2) ? null : r.GetDouble(2), r.IsDBNull(3) ? null : r.GetDouble(3),
                    r.IsDBNull(4) ? null : r.GetFieldValue<DateTimeOffset>(4));
            }
            await r.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) jobs.Add(ToJob(r));
        }
        if (bucket is not { } b)
        {
            // No limits (any more): the lease above was an ordinary one; the next goes the fast way.
            _limitedQueues.TryRemove(request.Queue, out _);
            return (jobs, null);
        }
        if (jobs.Count > 0 || b.Paused || b.Rate is not { } rate) return (jobs, null);
        // Nothing leased, maybe for want of a token: when is the next one due? (A spare wake-up costs one look.)
        var size = Math.Max(1, rate);
        var tokens = b.Tokens is { } t && b.TokensAt is { } at
            ? Math.Min(size, t + rate * Math.Max(0, (now - at).TotalSeconds))
            : size;
        if (tokens >= 1) return (jobs, null);
        return (jobs, TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling((1 - tokens) / rate * 1000))));
    }

    // ---- deletion and retention ------------------------------------------------------------------------------------

    public ValueTask<JobOutcome> JobDeleteAsync(long id, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            JobState? state = null;
            string? woken = null;
            await using (var batch = new NpgsqlBatch(connection))
            {
                // Lock first, delete in the next statement (one round trip): see JobsSql.Delete.
                var lockOne = new NpgsqlBatchCommand(_sql.LockOne);
                lockOne.Parameters.AddWithValue("id", id);
                batch.BatchCommands.Add(lockOne);
                var delete = new NpgsqlBatchCommand(_sql.Delete);
                delete.Parameters.AddWithValue("id", id);
                delete.Parameters.AddWithValue("channel", _channel);
                batch.BatchCommands.Add(delete);
                await using var r = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (await r.ReadAsync(ct).ConfigureAwait(false)) state = (JobState)r.GetInt16(0);
                await r.NextResultAsync(ct).ConfigureAwait(false);
                if (await r.ReadAsync(ct).ConfigureAwait(false))
                {
                    if (r.GetInt64(1) > 0) woken = r.GetString(0);
                }
                else if (state is { } found)
                {
                    return JobOutcome.Wrong(id, found, $"Job {id} is running; cancel it first, then delete it.");
                }
            }
            if (state is not { } deleted) return JobOutcome.NotFound(id);
            if (woken is not null) _wakeups.SignalQueue(woken);
            // A result wait on the job ends now (and finds no job).
            _wakeups.SignalFinished(id);
            return JobOutcome.Ok(id, deleted);
        }, cancellationToken);

    public ValueTask<int> JobDeleteFinishedAsync(string queue, DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken)
    {
        if (limit <= 0) return ValueTask.FromResult(0);
        return Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.DeleteFinished);
            command.Parameters.AddWithValue("queue", queue);
            command.Parameters.AddWithValue("before", Utc(finishedBefore));
            command.Parameters.AddWithValue("limit", limit);
            return (int)(long)(await command.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        }, cancellationToken);
    }

    // ---- queue settings ---------------------------------------------------------------------------------------------

    public ValueTask<QueueInfo> QueueConfigureAsync(string queue, QueueSettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.MaxRunning < 0) throw new ArgumentOutOfRangeException(nameof(settings), "MaxRunning cannot be negative.");
        if (settings.RatePerSecond is { } rate && !(rate > 0 && double.IsFinite(rate)))
            throw new ArgumentOutOfRangeException(nameof(settings), "RatePerSecond must be a positive number.");
        if (settings.Retention < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(settings), "Retention cannot be negative.");
        return Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using (var batch = new NpgsqlBatch(connection))
            {
                var configure = Add(batch, _sql.Configure, Now);
                configure.Parameters.AddWithValue("name", queue);
                configure.Parameters.Add(new NpgsqlParameter<int?>("max_running", NpgsqlDbType.Integer) { TypedValue = settings.MaxRunning });
                configure.Parameters.Add(new NpgsqlParameter<double?>("rate_per_second", NpgsqlDbType.Double) { TypedValue = settings.RatePerSecond });
                configure.Parameters.Add(new NpgsqlParameter<long?>("retention_ms", NpgsqlDbType.Bigint)
                {
                    TypedValue = settings.Retention is { } keep ? (long)keep.TotalMilliseconds : null,
                });
                configure.Parameters.AddWithValue("push", settings.Push);
                configure.Parameters.Add(new NpgsqlParameter<string?>("destinations", NpgsqlDbType.Text) { TypedValue = settings.DestinationsJson });
                // Limits raised or removed: waiting leases on every server look again.
                batch.BatchCommands.Add(NotifyCommand([queue]));
                await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            if (settings.MaxRunning is not null || settings.RatePerSecond is not null) _limitedQueues.TryAdd(queue, 0);
            else _limitedQueues.TryRemove(queue, out _);
            _wakeups.SignalQueue(queue);
            return (await ListQueues(connection, queue, ct).ConfigureAwait(false)).Single();
        }, cancellationToken);
    }

    /// <summary>Reads max_running, rate_per_second, retention_ms, push and destinations from consecutive columns.</summary>
    private static QueueSettings ReadSettings(NpgsqlDataReader r, int first)
    {
        var push = r.GetBoolean(first + 3);
        if (r.IsDBNull(first) && r.IsDBNull(first + 1) && r.IsDBNull(first + 2) && !push && r.IsDBNull(first + 4)) return QueueSettings.None;
        return new QueueSettings
        {
            MaxRunning = r.IsDBNull(first) ? null : r.GetInt32(first),
            RatePerSecond = r.IsDBNull(first + 1) ? null : r.GetDouble(first + 1),
            Retention = r.IsDBNull(first + 2) ? null : TimeSpan.FromMilliseconds(r.GetInt64(first + 2)),
            Push = push,
            DestinationsJson = r.IsDBNull(first + 4) ? null : r.GetString(first + 4),
        };
    }

    // ---- schedules -----------------------------------------------------------------------------------------------------

    public ValueTask<Schedule> ScheduleUpsertAsync(Schedule schedule, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        return Guard(async ct =>
        {
            var template = schedule.Template;
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.ScheduleUpsert);
            var p = command.Parameters;
            p.AddWithValue("name", schedule.Name);
            p.AddWithValue("cron", schedule.Cron);
            p.AddWithValue("time_zone", schedule.TimeZone);
            p.AddWithValue("queue", template.Queue);
            p.AddWithValue("kind", template.Kind);
            p.Add(new NpgsqlParameter<string?>("payload", NpgsqlDbType.Text) { TypedValue = template.PayloadJson });
            p.AddWithValue("priority", template.Priority);
            p.AddWithValue("max_attempts", template.MaxAttempts);
            p.Add(new NpgsqlParameter<string[]?>("tags", NpgsqlDbType.Array | NpgsqlDbType.Text)
            {
                TypedValue = template.Tags.Count == 0 ? null : [.. template.Tags],
            });
            p.AddWithValue("paused", schedule.Paused);
            p.AddWithValue("now", Now);
            await using var r = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await r.ReadAsync(ct).ConfigureAwait(false);
            return ToSchedule(r);
        }, cancellationToken);
    }

    public ValueTask<IReadOnlyList<Schedule>> ScheduleListAsync(CancellationToken cancellationToken) =>
        Guard<IReadOnlyList<Schedule>>(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.ScheduleList);
            var schedules = new List<Schedule>();
            await using var r = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false)) schedules.Add(ToSchedule(r));
            return schedules;
        }, cancellationToken);

    public ValueTask<bool> ScheduleDeleteAsync(string name, CancellationToken cancellationToken) =>
        Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.ScheduleDelete);
            command.Parameters.AddWithValue("name", name);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
        }, cancellationToken);

    public async ValueTask ScheduleRecordFiredAsync(string name, DateTimeOffset occurrence, CancellationToken cancellationToken) =>
        await Guard(async ct =>
        {
            await using var connection = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var command = Command(connection, _sql.ScheduleRecordFired);
            command.Parameters.AddWithValue("name", name);
            command.Parameters.AddWithValue("at", Utc(occurrence));
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);

    private static Schedule ToSchedule(NpgsqlDataReader r) => new()
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
            Tags = r.IsDBNull(8) ? [] : r.GetFieldValue<string[]>(8),
        },
        Paused = r.GetBoolean(9),
        CreatedAt = r.GetFieldValue<DateTimeOffset>(10),
        UpdatedAt = r.GetFieldValue<DateTimeOffset>(11),
        LastFiredFor = r.IsDBNull(12) ? null : r.GetFieldValue<DateTimeOffset>(12),
    };
}
