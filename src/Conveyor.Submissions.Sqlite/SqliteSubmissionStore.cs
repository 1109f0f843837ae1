using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Conveyor.Submissions.Sqlite;

/// <summary>Where the SQLite submission store keeps its file, and its clock.</summary>
public sealed record SqliteSubmissionStoreOptions
{
    /// <summary>The database file, <c>&lt;data&gt;/submissions.db</c> in the server.</summary>
    public required string Path { get; init; }

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Submissions in their own SQLite file (WAL, synchronous=FULL: a committed change survives a power cut). One writer
/// connection: a writer loop commits concurrent changes together (group commit, a savepoint each), and a submission's
/// insert takes the same connection's lock for its own transaction; result streams read on their own connections,
/// which WAL lets run beside the writer. SQLite has no row locks, so the single writer is what makes a
/// reservation exclusive (PostgreSQL uses SKIP LOCKED instead). A submission's insert holds the writer for as long as its
/// chunks take to write: the server spools an NDJSON upload to a temporary file first, so that is disk speed, never a
/// slow client's speed.
/// </summary>
public sealed class SqliteSubmissionStore : ISubmissionStore
{
    private const string Columns =
        "id, queue, state, chunks_total, chunks_done, chunks_failed, chunks_ready, chunks_reserved, operations_done, chunk_size, " +
        "max_chunk_retries, metadata, labels, prefix, callback, failed_chunk, failed_error, created_at, updated_at, finished_at";

    private readonly SqliteConnection _writer;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly string _readConnectionString;
    private readonly TimeProvider _time;

    // Bounded: when the disk cannot keep up, callers wait to queue instead of piling up in memory.
    private readonly Channel<PendingWrite> _writes = Channel.CreateBounded<PendingWrite>(new BoundedChannelOptions(4096) { SingleReader = true });
    private readonly Task _writerLoop;
    private const int MaxGroup = 256;
    private bool _disposed;

    private SqliteSubmissionStore(SqliteConnection writer, string readConnectionString, TimeProvider time)
    {
        _writer = writer;
        _readConnectionString = readConnectionString;
        _time = time;
        _writerLoop = Task.Run(WriterLoopAsync);
    }

    public static SqliteSubmissionStore Open(SqliteSubmissionStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(options.Path));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        var builder = new SqliteConnectionStringBuilder { DataSource = options.Path, Pooling = false, Mode = SqliteOpenMode.ReadWriteCreate };
        var connection = new SqliteConnection(builder.ConnectionString);
        connection.Open();
        SqliteSubmissionSchema.Exec(connection, "PRAGMA journal_mode = WAL");
        // Durability checkpoint: FULL syncs the WAL on every commit, so an acknowledged change is on disk.
        SqliteSubmissionSchema.Exec(connection, "PRAGMA synchronous = FULL");
        SqliteSubmissionSchema.Exec(connection, "PRAGMA busy_timeout = 5000");
        SqliteSubmissionSchema.Migrate(connection);
        var reader = new SqliteConnectionStringBuilder { DataSource = options.Path, Pooling = true, Mode = SqliteOpenMode.ReadOnly };
        return new SqliteSubmissionStore(connection, reader.ConnectionString, options.TimeProvider);
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public async ValueTask<Submission> CreateAsync(NewSubmission submission, IAsyncEnumerable<ChunkBody> chunks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        ArgumentNullException.ThrowIfNull(chunks);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            using var tx = _writer.BeginTransaction();
            var now = Now;
            long id;
            using (var insert = Command(tx, """
                INSERT INTO submissions (queue, state, chunks_total, chunk_size, max_chunk_retries, metadata, labels, prefix, callback, created_at, updated_at)
                VALUES (@queue, 0, 0, @chunk_size, @retries, @metadata, @labels, @prefix, @callback, @now, @now) RETURNING id
                """))
            {
                insert.Parameters.AddWithValue("@queue", submission.Queue);
                insert.Parameters.AddWithValue("@chunk_size", submission.ChunkSize);
                insert.Parameters.AddWithValue("@retries", submission.MaxChunkRetries);
                insert.Parameters.AddWithValue("@metadata", (object?)submission.MetadataJson ?? DBNull.Value);
                insert.Parameters.AddWithValue("@labels", StoredJson.Labels(submission.Labels));
                insert.Parameters.AddWithValue("@prefix", (object?)submission.Prefix ?? DBNull.Value);
                insert.Parameters.AddWithValue("@callback", (object?)StoredJson.Callback(submission.OnComplete) ?? DBNull.Value);
                insert.Parameters.AddWithValue("@now", now);
                id = (long)insert.ExecuteScalar()!;
            }
            foreach (var (key, value) in submission.Labels)
            {
                using var label = Command(tx, "INSERT INTO submission_labels (key, value, submission_id) VALUES (@k, @v, @id)");
                label.Parameters.AddWithValue("@k", key);
                label.Parameters.AddWithValue("@v", value);
                label.Parameters.AddWithValue("@id", id);
                label.ExecuteNonQuery();
            }
            // One prepared statement reused for every chunk: the stream is consumed as it is written, never collected.
            long count = 0;
            using (var chunk = Command(tx, "INSERT INTO chunks (submission_id, idx, state, body_kind, body) VALUES (@id, @idx, 0, @kind, @body)"))
            {
                var pId = chunk.Parameters.AddWithValue("@id", id);
                var pIdx = chunk.Parameters.Add("@idx", SqliteType.Integer);
                var pKind = chunk.Parameters.Add("@kind", SqliteType.Integer);
                var pBody = chunk.Parameters.Add("@body", SqliteType.Blob);
                chunk.Prepare();
                await foreach (var body in chunks.WithCancellation(cancellationToken))
                {
                    pIdx.Value = count++;
                    pKind.Value = (int)body.Kind;
                    pBody.Value = body.Kind is BodyKind.Json or BodyKind.Bytes ? body.Bytes.ToArray() : DBNull.Value;
                    chunk.ExecuteNonQuery();
                }
            }
            using (var totals = Command(tx, """
                UPDATE submissions SET chunks_total = @n, chunks_ready = @n,
                    state = CASE WHEN @n = 0 THEN 1 ELSE 0 END,
                    finished_at = CASE WHEN @n = 0 THEN @now END,
                    callback_due = CASE WHEN @n = 0 AND callback IS NOT NULL THEN 1 ELSE 0 END
                WHERE id = @id
                """))
            {
                totals.Parameters.AddWithValue("@n", count);
                totals.Parameters.AddWithValue("@now", now);
                totals.Parameters.AddWithValue("@id", id);
                totals.ExecuteNonQuery();
            }
            // Durability checkpoint: the submission and every chunk, or nothing.
            tx.Commit();
            return Get(id)!;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<Submission?> GetAsync(long id, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            return Get(id);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<IReadOnlyList<Submission>> FindAsync(SubmissionQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            using var command = _writer.CreateCommand();
            var where = new List<string>();
            if (query.Queue is not null) { where.Add("queue = @queue"); command.Parameters.AddWithValue("@queue", query.Queue); }
            if (query.State is { } state) { where.Add("state = @state"); command.Parameters.AddWithValue("@state", (int)state); }
            if (query.Prefix is not null) { where.Add("prefix = @prefix"); command.Parameters.AddWithValue("@prefix", query.Prefix); }
            if (query.BeforeId is { } before) { where.Add("id < @before"); command.Parameters.AddWithValue("@before", before); }
            var n = 0;
            foreach (var (key, value) in query.Labels)
            {
                where.Add($"id IN (SELECT submission_id FROM submission_labels WHERE key = @k{n} AND value = @v{n})");
                command.Parameters.AddWithValue($"@k{n}", key);
                command.Parameters.AddWithValue($"@v{n}", value);
                n++;
            }
            command.CommandText = $"SELECT {Columns} FROM submissions {(where.Count > 0 ? "WHERE " + string.Join(" AND ", where) : "")} ORDER BY id DESC LIMIT @limit";
            command.Parameters.AddWithValue("@limit", query.Limit);
            return ReadSubmissions(command);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async IAsyncEnumerable<ChunkResult> ReadResultsAsync(long id, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Its own connection: WAL readers see one snapshot per batch and never wait for the writer (nor make it wait).
        using var connection = new SqliteConnection(_readConnectionString);
        await connection.OpenAsync(cancellationToken);
        string? prefix;
        using (var head = connection.CreateCommand())
        {
            head.CommandText = "SELECT prefix FROM submissions WHERE id = @id";
            head.Parameters.AddWithValue("@id", id);
            prefix = head.ExecuteScalar() as string;
        }
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT idx, result_kind, result FROM chunks WHERE submission_id = @id AND idx > @after AND state = 2 ORDER BY idx LIMIT @batch";
        command.Parameters.AddWithValue("@id", id);
        var after = command.Parameters.AddWithValue("@after", -1L);
        command.Parameters.AddWithValue("@batch", SubmissionLimits.Batch);
        while (true)
        {
            var batch = new List<ChunkResult>(SubmissionLimits.Batch);
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read()) batch.Add(new ChunkResult(reader.GetInt64(0), ReadBody(reader, 1, 2), prefix));
            }
            foreach (var result in batch) yield return result;
            if (batch.Count < SubmissionLimits.Batch) yield break;
            after.Value = batch[^1].Index;
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    public ValueTask<CancelOutcome> CancelAsync(long id, CancellationToken cancellationToken) => Write(tx =>
    {
        var submission = Get(id, tx);
        if (submission is null) return new CancelOutcome(CancelStatus.NotFound, null);
        if (submission.IsTerminal) return new CancelOutcome(CancelStatus.AlreadyTerminal, submission);
        Finish(tx, id, SubmissionState.Cancelled, null, null);
        return new CancelOutcome(CancelStatus.Cancelled, Get(id, tx));
    }, cancellationToken);

    public ValueTask<IReadOnlyList<ReservedChunk>> ReserveAsync(ReserveRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Write<IReadOnlyList<ReservedChunk>>(tx =>
        {
            var candidates = new List<SubmissionCandidate>();
            using (var find = Command(tx, ""))
            {
                var order = request.Order switch
                {
                    SubmissionOrder.Newest => "s.id DESC",
                    SubmissionOrder.Random => "random()",
                    _ => "s.id",
                };
                if (request.PreferDistinct is { } label)
                {
                    find.CommandText = $"""
                        SELECT s.id, l.value, s.chunks_ready, s.chunks_reserved FROM submissions s
                        LEFT JOIN submission_labels l ON l.submission_id = s.id AND l.key = @label
                        WHERE s.queue = @queue AND s.state = 0 AND (s.chunks_ready > 0 OR s.chunks_reserved > 0)
                        ORDER BY {order} LIMIT {ReservationPlanner.MaxDistinctCandidates}
                        """;
                    find.Parameters.AddWithValue("@label", label);
                }
                else
                {
                    find.CommandText = $"""
                        SELECT s.id, NULL, s.chunks_ready, s.chunks_reserved FROM submissions s
                        WHERE s.queue = @queue AND s.state = 0 AND s.chunks_ready > 0 ORDER BY {order} LIMIT @max
                        """;
                    find.Parameters.AddWithValue("@max", request.Max);
                }
                find.Parameters.AddWithValue("@queue", request.Queue);
                using var reader = find.ExecuteReader();
                while (reader.Read())
                    candidates.Add(new SubmissionCandidate(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
            }
            var plan = ReservationPlanner.Plan(candidates, request.Max, request.PreferDistinct is not null);
            if (plan.Count == 0) return [];
            var now = Now;
            var expires = now + (long)request.LeaseDuration.TotalMilliseconds;
            var reserved = new List<ReservedChunk>();
            foreach (var (submissionId, count) in plan)
            {
                var head = Get(submissionId, tx)!;
                using var take = Command(tx, """
                    UPDATE chunks SET state = 1, attempt = attempt + 1, lease_token = @token, lease_owner = @owner, lease_expires_at = @expires
                    WHERE rowid IN (SELECT rowid FROM chunks WHERE submission_id = @id AND state = 0 ORDER BY idx LIMIT @n)
                    RETURNING idx, attempt, body_kind, body
                    """);
                var token = Guid.NewGuid().ToString("N");
                take.Parameters.AddWithValue("@token", token);
                take.Parameters.AddWithValue("@owner", (object?)request.Owner ?? DBNull.Value);
                take.Parameters.AddWithValue("@expires", expires);
                take.Parameters.AddWithValue("@id", submissionId);
                take.Parameters.AddWithValue("@n", count);
                var taken = new List<ReservedChunk>(count);
                using (var reader = take.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        taken.Add(new ReservedChunk(submissionId, reader.GetInt64(0), token, reader.GetInt32(1),
                            DateTimeOffset.FromUnixTimeMilliseconds(expires), ReadBody(reader, 2, 3), head.Prefix, head.Labels));
                    }
                }
                Counters(tx, submissionId, ready: -taken.Count, reserved: taken.Count, now);
                // RETURNING hands rows back in storage order; consumers see each submission's chunks by index.
                taken.Sort((a, b) => a.Index.CompareTo(b.Index));
                reserved.AddRange(taken);
            }
            return reserved;
        }, cancellationToken);
    }

    public ValueTask<ChunkOutcome> CompleteAsync(ChunkCompletion completion, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(completion);
        return Write(tx =>
        {
            if (Check(tx, completion.SubmissionId, completion.Index, completion.LeaseToken) is { } refused) return refused;
            var now = Now;
            using (var done = Command(tx, """
                UPDATE chunks SET state = 2, result_kind = @kind, result = @result, operations = @ops,
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                WHERE submission_id = @id AND idx = @idx
                """))
            {
                done.Parameters.AddWithValue("@kind", (int)completion.Result.Kind);
                done.Parameters.AddWithValue("@result", completion.Result.Kind is BodyKind.Json or BodyKind.Bytes ? completion.Result.Bytes.ToArray() : DBNull.Value);
                done.Parameters.AddWithValue("@ops", (object?)completion.Operations ?? DBNull.Value);
                done.Parameters.AddWithValue("@id", completion.SubmissionId);
                done.Parameters.AddWithValue("@idx", completion.Index);
                done.ExecuteNonQuery();
            }
            using (var progress = Command(tx, """
                UPDATE submissions SET chunks_done = chunks_done + 1, chunks_reserved = chunks_reserved - 1,
                    operations_done = operations_done + coalesce(@ops, chunk_size), updated_at = @now,
                    state = CASE WHEN chunks_done + 1 >= chunks_total THEN 1 ELSE state END,
                    finished_at = CASE WHEN chunks_done + 1 >= chunks_total THEN @now ELSE finished_at END,
                    callback_due = CASE WHEN chunks_done + 1 >= chunks_total AND callback IS NOT NULL THEN 1 ELSE callback_due END
                WHERE id = @id
                """))
            {
                progress.Parameters.AddWithValue("@ops", (object?)completion.Operations ?? DBNull.Value);
                progress.Parameters.AddWithValue("@now", now);
                progress.Parameters.AddWithValue("@id", completion.SubmissionId);
                progress.ExecuteNonQuery();
            }
            return new ChunkOutcome(ChunkOutcomeStatus.Ok, Get(completion.SubmissionId, tx), null);
        }, cancellationToken);
    }

    public ValueTask<ChunkOutcome> FailAsync(ChunkFailure failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        return Write(tx =>
        {
            if (Check(tx, failure.SubmissionId, failure.Index, failure.LeaseToken) is { } refused) return refused;
            FailAttempt(tx, failure.SubmissionId, failure.Index, failure.Error);
            return new ChunkOutcome(ChunkOutcomeStatus.Ok, Get(failure.SubmissionId, tx), null);
        }, cancellationToken);
    }

    public ValueTask<ChunkOutcome> HeartbeatAsync(long submissionId, long index, string leaseToken, TimeSpan extendBy, CancellationToken cancellationToken) => Write(tx =>
    {
        if (Check(tx, submissionId, index, leaseToken) is { } refused) return refused;
        using var extend = Command(tx, "UPDATE chunks SET lease_expires_at = @expires WHERE submission_id = @id AND idx = @idx");
        extend.Parameters.AddWithValue("@expires", Now + (long)extendBy.TotalMilliseconds);
        extend.Parameters.AddWithValue("@id", submissionId);
        extend.Parameters.AddWithValue("@idx", index);
        extend.ExecuteNonQuery();
        return new ChunkOutcome(ChunkOutcomeStatus.Ok, Get(submissionId, tx), null);
    }, cancellationToken);

    public ValueTask<ChunkOutcome> ReleaseAsync(long submissionId, long index, string leaseToken, CancellationToken cancellationToken) => Write(tx =>
    {
        if (Check(tx, submissionId, index, leaseToken) is { } refused) return refused;
        using var release = Command(tx, $"{ReleaseSql} WHERE submission_id = @id AND idx = @idx");
        release.Parameters.AddWithValue("@id", submissionId);
        release.Parameters.AddWithValue("@idx", index);
        release.ExecuteNonQuery();
        Counters(tx, submissionId, ready: 1, reserved: -1, Now);
        return new ChunkOutcome(ChunkOutcomeStatus.Ok, Get(submissionId, tx), null);
    }, cancellationToken);

    public ValueTask<int> ReleaseOwnerAsync(string owner, CancellationToken cancellationToken) => Write(tx =>
    {
        using var release = Command(tx, $"{ReleaseSql} WHERE lease_owner = @owner AND state = 1 RETURNING submission_id");
        release.Parameters.AddWithValue("@owner", owner);
        var perSubmission = new Dictionary<long, int>();
        using (var reader = release.ExecuteReader())
        {
            while (reader.Read()) perSubmission[reader.GetInt64(0)] = perSubmission.GetValueOrDefault(reader.GetInt64(0)) + 1;
        }
        var now = Now;
        foreach (var (id, count) in perSubmission) Counters(tx, id, ready: count, reserved: -count, now);
        return perSubmission.Values.Sum();
    }, cancellationToken);

    public ValueTask<int> ReclaimExpiredAsync(CancellationToken cancellationToken) => Write(tx =>
    {
        var expired = new List<(long Id, long Index)>();
        using (var find = Command(tx, "SELECT submission_id, idx FROM chunks WHERE state = 1 AND lease_expires_at <= @now LIMIT @batch"))
        {
            find.Parameters.AddWithValue("@now", Now);
            find.Parameters.AddWithValue("@batch", SubmissionLimits.Batch);
            using var reader = find.ExecuteReader();
            while (reader.Read()) expired.Add((reader.GetInt64(0), reader.GetInt64(1)));
        }
        // An expired lease is a failed attempt: a consumer that dies mid-chunk must not get unlimited retries.
        foreach (var (id, index) in expired) FailAttempt(tx, id, index, "lease expired");
        return expired.Count;
    }, cancellationToken);

    public async ValueTask<DateTimeOffset?> NextLeaseExpiryAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            using var command = _writer.CreateCommand();
            command.CommandText = "SELECT min(lease_expires_at) FROM chunks WHERE state = 1";
            return command.ExecuteScalar() is long ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<IReadOnlyList<Submission>> CallbacksDueAsync(int limit, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            using var command = _writer.CreateCommand();
            command.CommandText = $"SELECT {Columns} FROM submissions WHERE callback_due = 1 ORDER BY id LIMIT @limit";
            command.Parameters.AddWithValue("@limit", limit);
            return ReadSubmissions(command);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask CallbackDoneAsync(long id, CancellationToken cancellationToken) => await Write(tx =>
    {
        using var done = Command(tx, "UPDATE submissions SET callback_due = 0 WHERE id = @id");
        done.Parameters.AddWithValue("@id", id);
        return done.ExecuteNonQuery();
    }, cancellationToken);

    public ValueTask<int> DeleteFinishedAsync(DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken) => Write(tx =>
    {
        var ids = new List<long>();
        using (var find = Command(tx, "SELECT id FROM submissions WHERE state <> 0 AND finished_at < @before AND callback_due = 0 ORDER BY finished_at LIMIT @limit"))
        {
            find.Parameters.AddWithValue("@before", finishedBefore.ToUnixTimeMilliseconds());
            find.Parameters.AddWithValue("@limit", limit);
            using var reader = find.ExecuteReader();
            while (reader.Read()) ids.Add(reader.GetInt64(0));
        }
        foreach (var id in ids)
        {
            foreach (var sql in (string[])["DELETE FROM chunks WHERE submission_id = @id", "DELETE FROM submission_labels WHERE submission_id = @id", "DELETE FROM submissions WHERE id = @id"])
            {
                using var delete = Command(tx, sql);
                delete.Parameters.AddWithValue("@id", id);
                delete.ExecuteNonQuery();
            }
        }
        return ids.Count;
    }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        _writes.Writer.TryComplete();
        await _writerLoop;
        await _lock.WaitAsync();
        try
        {
            if (_disposed) return;
            _disposed = true;
            await _writer.DisposeAsync();
            SqliteConnection.ClearAllPools();
        }
        finally
        {
            _lock.Release();
        }
    }

    private const string ReleaseSql = "UPDATE chunks SET state = 0, attempt = attempt - 1, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL";

    /// <summary>
    /// Queues one change for the writer loop and waits until it is committed. Concurrent changes share a transaction and its
    /// fsync (group commit), each inside a savepoint, so one failing change rolls back only itself.
    /// </summary>
    private async ValueTask<T> Write<T>(Func<SqliteTransaction, T> change, CancellationToken cancellationToken)
    {
        var pending = new PendingWrite<T>(change);
        try
        {
            await _writes.Writer.WriteAsync(pending, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(SqliteSubmissionStore));
        }
        return await pending.Task;
    }

    private async Task WriterLoopAsync()
    {
        var batch = new List<PendingWrite>(MaxGroup);
        while (await _writes.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxGroup && _writes.Reader.TryRead(out var next)) batch.Add(next);
            await _lock.WaitAsync();
            try
            {
                using var tx = _writer.BeginTransaction();
                foreach (var write in batch)
                {
                    tx.Save("w");
                    try
                    {
                        write.Run(tx);
                        tx.Release("w");
                    }
                    catch (Exception e)
                    {
                        tx.Rollback("w");
                        tx.Release("w");
                        write.Error = e;
                    }
                }
                // Durability checkpoint: the whole group is on disk before any caller hears of its change.
                tx.Commit();
                foreach (var write in batch) write.Answer();
            }
            catch (Exception e)
            {
                foreach (var write in batch) write.Fail(e);
            }
            finally
            {
                _lock.Release();
            }
        }
    }

    private abstract class PendingWrite
    {
        public Exception? Error { get; set; }

        public abstract void Run(SqliteTransaction tx);

        public abstract void Answer();

        public abstract void Fail(Exception e);
    }

    private sealed class PendingWrite<T>(Func<SqliteTransaction, T> change) : PendingWrite
    {
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;

        public Task<T> Task => _done.Task;

        public override void Run(SqliteTransaction tx) => _result = change(tx);

        public override void Answer()
        {
            if (Error is not null) _done.TrySetException(Error);
            else _done.TrySetResult(_result!);
        }

        public override void Fail(Exception e) => _done.TrySetException(e);
    }

    /// <summary>Null when the token holds the chunk's reservation; otherwise the outcome that refuses the call, changing nothing.</summary>
    private ChunkOutcome? Check(SqliteTransaction tx, long submissionId, long index, string leaseToken)
    {
        using var read = Command(tx, "SELECT state, lease_token FROM chunks WHERE submission_id = @id AND idx = @idx");
        read.Parameters.AddWithValue("@id", submissionId);
        read.Parameters.AddWithValue("@idx", index);
        using var reader = read.ExecuteReader();
        if (!reader.Read()) return new ChunkOutcome(ChunkOutcomeStatus.NotFound, null, $"Submission {submissionId} has no chunk {index}.");
        var state = (ChunkState)reader.GetInt32(0);
        var token = reader.IsDBNull(1) ? null : reader.GetString(1);
        reader.Close();
        return ChunkRules.Refusal(state, token, leaseToken, submissionId, index) is { } refusal
            ? new ChunkOutcome(refusal.Status, Get(submissionId, tx), refusal.Detail)
            : null;
    }

    /// <summary>One failed attempt of a reserved chunk: ready again while retries are left, otherwise the submission fails.</summary>
    private void FailAttempt(SqliteTransaction tx, long submissionId, long index, string error)
    {
        int attempt, maxRetries;
        using (var read = Command(tx, "SELECT c.attempt, s.max_chunk_retries FROM chunks c JOIN submissions s ON s.id = c.submission_id WHERE c.submission_id = @id AND c.idx = @idx"))
        {
            read.Parameters.AddWithValue("@id", submissionId);
            read.Parameters.AddWithValue("@idx", index);
            using var reader = read.ExecuteReader();
            reader.Read();
            attempt = reader.GetInt32(0);
            maxRetries = reader.GetInt32(1);
        }
        var now = Now;
        if (attempt <= maxRetries)
        {
            using var retry = Command(tx, "UPDATE chunks SET state = 0, error = @error, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE submission_id = @id AND idx = @idx");
            retry.Parameters.AddWithValue("@error", error);
            retry.Parameters.AddWithValue("@id", submissionId);
            retry.Parameters.AddWithValue("@idx", index);
            retry.ExecuteNonQuery();
            Counters(tx, submissionId, ready: 1, reserved: -1, now);
            return;
        }
        using (var dead = Command(tx, "UPDATE chunks SET state = 3, error = @error, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE submission_id = @id AND idx = @idx"))
        {
            dead.Parameters.AddWithValue("@error", error);
            dead.Parameters.AddWithValue("@id", submissionId);
            dead.Parameters.AddWithValue("@idx", index);
            dead.ExecuteNonQuery();
        }
        Finish(tx, submissionId, SubmissionState.Failed, index, error);
    }

    /// <summary>Ends a submission: unfinished chunks are skipped (never handed out again), and a failure records its chunk.</summary>
    private void Finish(SqliteTransaction tx, long submissionId, SubmissionState state, long? failedIndex, string? error)
    {
        using (var skip = Command(tx, "UPDATE chunks SET state = 4, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE submission_id = @id AND state IN (0, 1)"))
        {
            skip.Parameters.AddWithValue("@id", submissionId);
            skip.ExecuteNonQuery();
        }
        using var finish = Command(tx, """
            UPDATE submissions SET state = @state, chunks_ready = 0, chunks_reserved = 0, updated_at = @now, finished_at = @now,
                chunks_failed = chunks_failed + @failed, failed_chunk = @index, failed_error = @error,
                callback_due = CASE WHEN @state = 2 AND callback IS NOT NULL THEN 1 ELSE 0 END
            WHERE id = @id
            """);
        finish.Parameters.AddWithValue("@state", (int)state);
        finish.Parameters.AddWithValue("@now", Now);
        finish.Parameters.AddWithValue("@failed", failedIndex is null ? 0 : 1);
        finish.Parameters.AddWithValue("@index", (object?)failedIndex ?? DBNull.Value);
        finish.Parameters.AddWithValue("@error", (object?)error ?? DBNull.Value);
        finish.Parameters.AddWithValue("@id", submissionId);
        finish.ExecuteNonQuery();
    }

    private void Counters(SqliteTransaction tx, long submissionId, long ready, long reserved, long now)
    {
        using var update = Command(tx, "UPDATE submissions SET chunks_ready = chunks_ready + @ready, chunks_reserved = chunks_reserved + @reserved, updated_at = @now WHERE id = @id");
        update.Parameters.AddWithValue("@ready", ready);
        update.Parameters.AddWithValue("@reserved", reserved);
        update.Parameters.AddWithValue("@now", now);
        update.Parameters.AddWithValue("@id", submissionId);
        update.ExecuteNonQuery();
    }

    private Submission? Get(long id, SqliteTransaction? tx = null)
    {
        using var command = tx is null ? _writer.CreateCommand() : Command(tx, "");
        command.CommandText = $"SELECT {Columns} FROM submissions WHERE id = @id";
        command.Parameters.AddWithValue("@id", id);
        var found = ReadSubmissions(command);
        return found.Count == 0 ? null : found[0];
    }

    private static List<Submission> ReadSubmissions(SqliteCommand command)
    {
        var list = new List<Submission>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            list.Add(new Submission
            {
                Id = reader.GetInt64(0),
                Queue = reader.GetString(1),
                State = (SubmissionState)reader.GetInt32(2),
                ChunksTotal = reader.GetInt64(3),
                ChunksDone = reader.GetInt64(4),
                ChunksFailed = reader.GetInt64(5),
                ChunksReady = reader.GetInt64(6),
                ChunksReserved = reader.GetInt64(7),
                OperationsDone = reader.GetInt64(8),
                ChunkSize = reader.GetInt32(9),
                MaxChunkRetries = reader.GetInt32(10),
                MetadataJson = reader.IsDBNull(11) ? null : reader.GetString(11),
                Labels = StoredJson.ParseLabels(reader.GetString(12)),
                Prefix = reader.IsDBNull(13) ? null : reader.GetString(13),
                OnComplete = StoredJson.ParseCallback(reader.IsDBNull(14) ? null : reader.GetString(14)),
                FailedChunkIndex = reader.IsDBNull(15) ? null : reader.GetInt64(15),
                FailedChunkError = reader.IsDBNull(16) ? null : reader.GetString(16),
                CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(17)),
                UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(18)),
                FinishedAt = reader.IsDBNull(19) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(19)),
            });
        }
        return list;
    }

    private static ChunkBody ReadBody(SqliteDataReader reader, int kindColumn, int bytesColumn)
    {
        var kind = (BodyKind)reader.GetInt32(kindColumn);
        return kind is BodyKind.Json or BodyKind.Bytes ? new ChunkBody(kind, (byte[])reader.GetValue(bytesColumn)) : new ChunkBody(kind, default);
    }

    private SqliteCommand Command(SqliteTransaction tx, string sql)
    {
        var command = _writer.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        return command;
    }
}
