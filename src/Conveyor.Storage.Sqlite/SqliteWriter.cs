using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// The one connection that writes, with its statements prepared once. Used only by the writer loop.
/// Transactions are plain BEGIN/COMMIT statements so that prepared commands need no transaction object.
/// </summary>
internal sealed class SqliteWriter : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly SqliteCommand _begin, _commit, _rollback;
    private readonly RawStatement _insertJob, _complete;
    private readonly SqliteCommand _findIdempotent, _upsertQueue, _setPaused;
    private readonly SqliteCommand _retryLater, _dead, _cancel, _insertEvent, _updateAttempt;
    private readonly SqliteCommand _readForRetry, _requeue;
    private readonly HashSet<string> _knownQueues = new(StringComparer.Ordinal);
    private readonly List<string> _queuesAddedInTransaction = [];
    private readonly SqliteCommand _reserveIds;
    private long _nextId, _nextIdAtBegin;
    private long _reservedThrough, _reservedThroughAtBegin;

    // Ids are reserved this many at a time: one extra row write per block instead of a sequence write per commit.
    private const long IdBlock = 4096;

    public SqliteWriter(SqliteConnection connection)
    {
        _connection = connection;
        _begin = Command("BEGIN IMMEDIATE");
        _commit = Command("COMMIT");
        _rollback = Command("ROLLBACK");
        _insertJob = new RawStatement(connection,
            "INSERT INTO jobs (id, queue, kind, state, priority, run_at, attempt, max_attempts, payload, idempotency_key, partition_key, " +
            "tags, trace_parent, created_at, updated_at, destinations) VALUES (?1, ?2, ?3, 0, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)");
        _findIdempotent = Command("SELECT id FROM jobs WHERE queue = $queue AND idempotency_key = $key", "$queue", "$key");
        _upsertQueue = Command("INSERT INTO queues (name, paused, created_at) VALUES ($name, 0, $now) ON CONFLICT DO NOTHING", "$name", "$now");
        _setPaused = Command(
            "INSERT INTO queues (name, paused, created_at) VALUES ($name, $paused, $now) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
            "$name", "$paused", "$now");
        _complete = new RawStatement(connection,
            $"UPDATE jobs SET state = {JobsTable.Completed}, attempt = ?2, result = ?3, started_at = ?4, finished_at = ?5, updated_at = ?5 WHERE id = ?1");
        _retryLater = Command(
            "UPDATE jobs SET run_at = $run_at, attempt = $attempt, errors = json_insert(coalesce(errors, '[]'), '$[#]', json($error)), " +
            "started_at = $started, updated_at = $now, result = coalesce($result, result) WHERE id = $id",
            "$id", "$run_at", "$attempt", "$error", "$started", "$now", "$result");
        _dead = Command(
            $"UPDATE jobs SET state = {JobsTable.Dead}, attempt = $attempt, errors = json_insert(coalesce(errors, '[]'), '$[#]', json($error)), " +
            "started_at = $started, finished_at = $now, updated_at = $now, result = coalesce($result, result) WHERE id = $id",
            "$id", "$attempt", "$error", "$started", "$now", "$result");
        _cancel = Command(
            $"UPDATE jobs SET state = {JobsTable.Cancelled}, attempt = $attempt, finished_at = $now, updated_at = $now WHERE id = $id",
            "$id", "$attempt", "$now");
        _updateAttempt = Command("UPDATE jobs SET attempt = $attempt, started_at = $started, updated_at = $now WHERE id = $id",
            "$id", "$attempt", "$started", "$now");
        _insertEvent = Command(
            "INSERT INTO job_events (job_id, at, type, state, attempt, message) VALUES ($id, $at, $type, $state, $attempt, $message)",
            "$id", "$at", "$type", "$state", "$attempt", "$message");
        _readForRetry = Command("SELECT state, queue, priority, max_attempts, partition_key, kind FROM jobs WHERE id = $id", "$id");
        _reserveIds = Command("UPDATE id_reservations SET reserved_through = $through WHERE name = 'jobs'", "$through");
        _requeue = Command(
            "UPDATE jobs SET state = 0, attempt = 0, run_at = $now, started_at = NULL, finished_at = NULL, updated_at = $now WHERE id = $id",
            "$id", "$now");

        using (var q = _connection.CreateCommand())
        {
            q.CommandText = "SELECT name FROM queues";
            using var r = q.ExecuteReader();
            while (r.Read()) _knownQueues.Add(r.GetString(0));
        }
        using (var q = _connection.CreateCommand())
        {
            // Ids are assigned here so responses need no read-back. Every id handed out was reserved in the transaction that
            // inserted it, so starting after the reservation never reuses one, even when the newest jobs were deleted.
            q.CommandText = "SELECT reserved_through FROM id_reservations WHERE name = 'jobs'";
            _reservedThrough = Convert.ToInt64(q.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            _nextId = _reservedThrough + 1;
        }
    }

    private SqliteCommand Command(string sql, params string[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters) command.Parameters.Add(new SqliteParameter(name, null));
        command.Prepare();
        return command;
    }

    private static int Run(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++) command.Parameters[i].Value = values[i] ?? DBNull.Value;
        return command.ExecuteNonQuery();
    }

    public void Begin()
    {
        _nextIdAtBegin = _nextId;
        _reservedThroughAtBegin = _reservedThrough;
        _queuesAddedInTransaction.Clear();
        _begin.ExecuteNonQuery();
    }

    /// <summary>Durability checkpoint: with synchronous=FULL the WAL is fsynced before this returns.</summary>
    public void Commit() => _commit.ExecuteNonQuery();

    public void Rollback()
    {
        try { _rollback.ExecuteNonQuery(); }
        catch (SqliteException) { /* no transaction left to roll back: SQLite already did */ }
        _nextId = _nextIdAtBegin;
        _reservedThrough = _reservedThroughAtBegin;
        foreach (var name in _queuesAddedInTransaction) _knownQueues.Remove(name);
    }

    public void EnsureQueue(string name, long nowMs)
    {
        if (_knownQueues.Contains(name)) return;
        Run(_upsertQueue, name, nowMs);
        _knownQueues.Add(name);
        _queuesAddedInTransaction.Add(name);
    }

    public void SetPaused(string name, bool paused, long nowMs)
    {
        Run(_setPaused, name, paused ? 1 : 0, nowMs);
        if (_knownQueues.Add(name)) _queuesAddedInTransaction.Add(name);
    }

    public long? FindIdempotent(string queue, string key)
    {
        _findIdempotent.Parameters[0].Value = queue;
        _findIdempotent.Parameters[1].Value = key;
        return _findIdempotent.ExecuteScalar() is long id ? id : null;
    }

    public long InsertJob(NewJob job, long runAtMs, long nowMs)
    {
        var id = _nextId++;
        if (id > _reservedThrough)
        {
            _reservedThrough = id + IdBlock - 1;
            Run(_reserveIds, _reservedThrough);
        }
        _insertJob.Bind(1, id).Bind(2, job.Queue).Bind(3, job.Kind).Bind(4, job.Priority).Bind(5, runAtMs).Bind(6, job.MaxAttempts)
            .Bind(7, job.PayloadJson).Bind(8, job.IdempotencyKey).Bind(9, job.PartitionKey).Bind(10, RowMapper.TagsToJson(job.Tags))
            .Bind(11, job.TraceParent).Bind(12, nowMs).Bind(13, job.DestinationsJson).Execute();
        return id;
    }

    public void Complete(long id, int attempt, string? resultJson, long startedMs, long nowMs) =>
        _complete.Bind(1, id).Bind(2, attempt).Bind(3, resultJson).Bind(4, startedMs).Bind(5, nowMs).Execute();

    public void RetryLater(long id, int attempt, long runAtMs, string errorJson, string? resultJson, long startedMs, long nowMs) =>
        Run(_retryLater, id, runAtMs, attempt, errorJson, startedMs, nowMs, resultJson);

    public void Dead(long id, int attempt, string errorJson, string? resultJson, long startedMs, long nowMs) =>
        Run(_dead, id, attempt, errorJson, startedMs, nowMs, resultJson);

    public void Cancel(long id, int attempt, long nowMs) => Run(_cancel, id, attempt, nowMs);

    public void UpdateAttempt(long id, int attempt, long startedMs, long nowMs) => Run(_updateAttempt, id, attempt, startedMs, nowMs);

    public void Event(long id, long atMs, string type, JobState state, int attempt, string? message) =>
        Run(_insertEvent, id, atMs, type, (int)state, attempt, message);

    public readonly record struct RetryCandidate(int StoredState, string Queue, int Priority, int MaxAttempts, string? PartitionKey, string Kind);

    public RetryCandidate? ReadForRetry(long id)
    {
        _readForRetry.Parameters[0].Value = id;
        using var r = _readForRetry.ExecuteReader();
        if (!r.Read()) return null;
        return new RetryCandidate(r.GetInt32(0), r.GetString(1), r.GetInt32(2), r.GetInt32(3), r.IsDBNull(4) ? null : r.GetString(4), r.GetString(5));
    }

    public void Requeue(long id, long nowMs) => Run(_requeue, id, nowMs);

    // Rare operations (delete, retention, settings, schedules) use one-off commands: their cost is not per job.
    private SqliteCommand OneOff(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }

    /// <summary>Deletes a job and its events; with <paramref name="onlyFinished"/> only when it is finished. Returns its queue and stored state.</summary>
    public (string Queue, int State)? DeleteJob(long id, bool onlyFinished)
    {
        (string, int)? deleted = null;
        using (var command = OneOff($"DELETE FROM jobs WHERE id = $id{(onlyFinished ? " AND state <> 0" : "")} RETURNING queue, state", ("$id", id)))
        using (var r = command.ExecuteReader())
        {
            if (r.Read()) deleted = (r.GetString(0), r.GetInt32(1));
        }
        if (deleted is not null)
        {
            using var events = OneOff("DELETE FROM job_events WHERE job_id = $id", ("$id", id));
            events.ExecuteNonQuery();
        }
        return deleted;
    }

    public bool JobExists(long id)
    {
        using var command = OneOff("SELECT 1 FROM jobs WHERE id = $id", ("$id", id));
        return command.ExecuteScalar() is not null;
    }

    /// <summary>Deletes up to <paramref name="limit"/> finished jobs of a queue, oldest first; returns their stored states.</summary>
    public IReadOnlyList<int> DeleteFinished(string queue, long finishedBeforeMs, int limit)
    {
        var ids = new List<long>();
        var states = new List<int>();
        using (var command = OneOff(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = $queue AND state <> 0 AND finished_at < $before " +
            "ORDER BY finished_at LIMIT $limit) RETURNING id, state", ("$queue", queue), ("$before", finishedBeforeMs), ("$limit", limit)))
        using (var r = command.ExecuteReader())
        {
            while (r.Read())
            {
                ids.Add(r.GetInt64(0));
                states.Add(r.GetInt32(1));
            }
        }
        if (ids.Count > 0)
        {
            using var events = OneOff("DELETE FROM job_events WHERE job_id IN (SELECT value FROM json_each($ids))", ("$ids", RowMapper.IdsToJson(ids)));
            events.ExecuteNonQuery();
        }
        return states;
    }

    public void Configure(string queue, QueueSettings settings, long nowMs)
    {
        using var command = OneOff(
            "INSERT INTO queues (name, paused, created_at, max_running, rate_per_second, retention_ms, push, destinations) " +
            "VALUES ($name, 0, $now, $max, $rate, $retention, $push, $destinations) " +
            "ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running, rate_per_second = excluded.rate_per_second, " +
            "retention_ms = excluded.retention_ms, push = excluded.push, destinations = excluded.destinations",
            ("$name", queue), ("$now", nowMs), ("$max", settings.MaxRunning), ("$rate", settings.RatePerSecond),
            ("$retention", settings.Retention is { } r ? (long)r.TotalMilliseconds : null), ("$push", settings.Push ? 1 : 0),
            ("$destinations", settings.DestinationsJson));
        command.ExecuteNonQuery();
        if (_knownQueues.Add(queue)) _queuesAddedInTransaction.Add(queue);
    }

    public void UpsertSchedule(Schedule schedule, long nowMs)
    {
        var t = schedule.Template;
        using var command = OneOff(
            "INSERT INTO schedules (name, cron, time_zone, queue, kind, payload, priority, max_attempts, tags, paused, created_at, updated_at) " +
            "VALUES ($name, $cron, $zone, $queue, $kind, $payload, $priority, $attempts, $tags, $paused, $now, $now) " +
            "ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, time_zone = excluded.time_zone, queue = excluded.queue, kind = excluded.kind, " +
            "payload = excluded.payload, priority = excluded.priority, max_attempts = excluded.max_attempts, tags = excluded.tags, " +
            "paused = excluded.paused, updated_at = excluded.updated_at",
            ("$name", schedule.Name), ("$cron", schedule.Cron), ("$zone", schedule.TimeZone), ("$queue", t.Queue), ("$kind", t.Kind),
            ("$payload", t.PayloadJson), ("$priority", t.Priority), ("$attempts", t.MaxAttempts), ("$tags", RowMapper.TagsToJson(t.Tags)),
            ("$paused", schedule.Paused ? 1 : 0), ("$now", nowMs));
        command.ExecuteNonQuery();
    }

    public bool DeleteSchedule(string name)
    {
        using var command = OneOff("DELETE FROM schedules WHERE name = $name", ("$name", name));
        return command.ExecuteNonQuery() > 0;
    }

    public bool RecordFired(string name, long occurrenceMs)
    {
        using var command = OneOff(
            "UPDATE schedules SET last_fired_for = max(coalesce(last_fired_for, $at), $at) WHERE name = $name", ("$name", name), ("$at", occurrenceMs));
        return command.ExecuteNonQuery() > 0;
    }

    public void Dispose()
    {
        _insertJob.Dispose();
        _complete.Dispose();
        foreach (var command in new[] { _begin, _commit, _rollback, _findIdempotent, _upsertQueue, _setPaused, _retryLater, _dead, _cancel, _insertEvent, _updateAttempt, _readForRetry, _requeue, _reserveIds })
        {
            command.Dispose();
        }
        _connection.Dispose();
    }
}
