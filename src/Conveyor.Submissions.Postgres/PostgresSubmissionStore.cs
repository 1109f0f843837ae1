using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;

namespace Conveyor.Submissions.Postgres;

/// <summary>Where the PostgreSQL submission store lives: the job store's database and schema, with tables of its own.</summary>
public sealed record PostgresSubmissionStoreOptions
{
    public required string ConnectionString { get; init; }

    public string Schema { get; init; } = "conveyor";

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Submissions in PostgreSQL, shared by every server on the database. Chunks are inserted with binary COPY inside the
/// submission's transaction; reservations pick ready chunks with <c>FOR UPDATE SKIP LOCKED</c>. Every change to a
/// submission first locks its row (in id order when there are several): the progress counters live on that row anyway,
/// and one lock order for all writers rules out deadlocks between reserve, complete, fail and cancel.
/// </summary>
public sealed class PostgresSubmissionStore : ISubmissionStore
{
    private const string Columns =
        "id, queue, state, chunks_total, chunks_done, chunks_failed, chunks_ready, chunks_reserved, operations_done, chunk_size, " +
        "max_chunk_retries, metadata::text, labels::text, prefix, callback::text, failed_chunk, failed_error, created_at, updated_at, finished_at";

    private readonly NpgsqlDataSource _db;
    private readonly string _schema;
    private readonly TimeProvider _time;

    // Bounded: when the database cannot keep up, callers wait to queue instead of piling up in memory.
    private readonly Channel<PendingCompletion> _completions = Channel.CreateBounded<PendingCompletion>(new BoundedChannelOptions(4096) { SingleReader = true });
    private readonly Task _completionLoop;
    private const int MaxGroup = 256;

    private PostgresSubmissionStore(NpgsqlDataSource db, string schema, TimeProvider time)
    {
        _db = db;
        _schema = schema;
        _time = time;
        _completionLoop = Task.Run(CompletionLoopAsync);
    }

    public static async Task<PostgresSubmissionStore> OpenAsync(PostgresSubmissionStoreOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new NpgsqlConnectionStringBuilder(options.ConnectionString);
        if (builder.MaxAutoPrepare == 0) builder.MaxAutoPrepare = 32;
        var db = NpgsqlDataSource.Create(builder.ConnectionString);
        try
        {
            await using var connection = await db.OpenConnectionAsync(cancellationToken);
            await PostgresSubmissionSchema.MigrateAsync(connection, options.Schema, cancellationToken);
        }
        catch (Exception e)
        {
            await db.DisposeAsync();
            if (e is NpgsqlException) throw Unavailable(e);
            throw;
        }
        return new PostgresSubmissionStore(db, options.Schema, options.TimeProvider);
    }

    private DateTimeOffset Now => _time.GetUtcNow();

    private string S(string sql) => sql.Replace("{s}", "\"" + _schema + "\"", StringComparison.Ordinal);

    public async ValueTask<Submission> CreateAsync(NewSubmission submission, IAsyncEnumerable<ChunkBody> chunks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        ArgumentNullException.ThrowIfNull(chunks);
        return await Run(async (connection, tx) =>
        {
            var now = Now;
            long id;
            await using (var insert = new NpgsqlCommand(S("""
                INSERT INTO {s}.submissions (queue, state, chunks_total, chunk_size, max_chunk_retries, metadata, labels, prefix, callback, created_at, updated_at)
                VALUES (@queue, 0, 0, @chunk_size, @retries, @metadata::json, @labels::jsonb, @prefix, @callback::json, @now, @now) RETURNING id
                """), connection, tx))
            {
                insert.Parameters.AddWithValue("queue", submission.Queue);
                insert.Parameters.AddWithValue("chunk_size", submission.ChunkSize);
                insert.Parameters.AddWithValue("retries", submission.MaxChunkRetries);
                insert.Parameters.Add(new NpgsqlParameter("metadata", NpgsqlDbType.Text) { Value = (object?)submission.MetadataJson ?? DBNull.Value });
                insert.Parameters.AddWithValue("labels", StoredJson.Labels(submission.Labels));
                insert.Parameters.Add(new NpgsqlParameter("prefix", NpgsqlDbType.Text) { Value = (object?)submission.Prefix ?? DBNull.Value });
                insert.Parameters.Add(new NpgsqlParameter("callback", NpgsqlDbType.Text) { Value = (object?)StoredJson.Callback(submission.OnComplete) ?? DBNull.Value });
                insert.Parameters.AddWithValue("now", now);
                id = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
            }
            foreach (var (key, value) in submission.Labels)
            {
                await using var label = new NpgsqlCommand(S("INSERT INTO {s}.submission_labels (key, value, submission_id) VALUES (@k, @v, @id)"), connection, tx);
                label.Parameters.AddWithValue("k", key);
                label.Parameters.AddWithValue("v", value);
                label.Parameters.AddWithValue("id", id);
                await label.ExecuteNonQueryAsync(cancellationToken);
            }
            // Binary COPY inside the transaction: rows stream to the server as the chunks are read, never collected here.
            long count = 0;
            await using (var copy = await connection.BeginBinaryImportAsync(
                S("COPY {s}.submission_chunks (submission_id, idx, state, body_kind, body) FROM STDIN (FORMAT BINARY)"), cancellationToken))
            {
                await foreach (var body in chunks.WithCancellation(cancellationToken))
                {
                    await copy.StartRowAsync(cancellationToken);
                    await copy.WriteAsync(id, NpgsqlDbType.Bigint, cancellationToken);
                    await copy.WriteAsync(count++, NpgsqlDbType.Bigint, cancellationToken);
                    await copy.WriteAsync((short)ChunkState.Ready, NpgsqlDbType.Smallint, cancellationToken);
                    await copy.WriteAsync((short)body.Kind, NpgsqlDbType.Smallint, cancellationToken);
                    if (body.Kind is BodyKind.Json or BodyKind.Bytes) await copy.WriteAsync(body.Bytes.ToArray(), NpgsqlDbType.Bytea, cancellationToken);
                    else await copy.WriteNullAsync(cancellationToken);
                }
                await copy.CompleteAsync(cancellationToken);
            }
            await using (var totals = new NpgsqlCommand(S("""
                UPDATE {s}.submissions SET chunks_total = @n, chunks_ready = @n,
                    state = CASE WHEN @n = 0 THEN 1 ELSE 0 END,
                    finished_at = CASE WHEN @n = 0 THEN @now END,
                    callback_due = (@n = 0 AND callback IS NOT NULL)
                WHERE id = @id
                """), connection, tx))
            {
                totals.Parameters.AddWithValue("n", count);
                totals.Parameters.AddWithValue("now", now);
                totals.Parameters.AddWithValue("id", id);
                await totals.ExecuteNonQueryAsync(cancellationToken);
            }
            return (await Get(connection, tx, id, cancellationToken))!;
        }, cancellationToken);
    }

    public async ValueTask<Submission?> GetAsync(long id, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _db.OpenConnectionAsync(cancellationToken);
            return await Get(connection, null, id, cancellationToken);
        }
        catch (NpgsqlException e)
        {
            throw Unavailable(e);
        }
    }

    public async ValueTask<IReadOnlyList<Submission>> FindAsync(SubmissionQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        try
        {
            await using var connection = await _db.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand { Connection = connection };
            var where = new List<string>();
            if (query.Queue is not null) { where.Add("queue = @queue"); command.Parameters.AddWithValue("queue", query.Queue); }
            if (query.State is { } state) { where.Add("state = @state"); command.Parameters.AddWithValue("state", (short)state); }
            if (query.Prefix is not null) { where.Add("prefix = @prefix"); command.Parameters.AddWithValue("prefix", query.Prefix); }
            if (query.BeforeId is { } before) { where.Add("id < @before"); command.Parameters.AddWithValue("before", before); }
            var n = 0;
            foreach (var (key, value) in query.Labels)
            {
                where.Add($"id IN (SELECT submission_id FROM {{s}}.submission_labels WHERE key = @k{n} AND value = @v{n})");
                command.Parameters.AddWithValue($"k{n}", key);
                command.Parameters.AddWithValue($"v{n}", value);
                n++;
            }
            command.CommandText = S($"SELECT {Columns} FROM {{s}}.submissions {(where.Count > 0 ? "WHERE " + string.Join(" AND ", where) : "")} ORDER BY id DESC LIMIT @limit");
            command.Parameters.AddWithValue("limit", query.Limit);
            return await ReadSubmissions(command, cancellationToken);
        }
        catch (NpgsqlException e)
        {
            throw Unavailable(e);
        }
    }

    public async IAsyncEnumerable<ChunkResult> ReadResultsAsync(long id, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? prefix;
        await using (var connection = await _db.OpenConnectionAsync(cancellationToken))
        await using (var head = new NpgsqlCommand(S("SELECT prefix FROM {s}.submissions WHERE id = @id"), connection))
        {
            head.Parameters.AddWithValue("id", id);
            prefix = await head.ExecuteScalarAsync(cancellationToken) as string;
        }
        var after = -1L;
        while (true)
        {
            // One short query per batch (keyset on the primary key): no connection or snapshot is held between batches.
            var batch = new List<ChunkResult>(SubmissionLimits.Batch);
            await using (var connection = await _db.OpenConnectionAsync(cancellationToken))
            await using (var command = new NpgsqlCommand(S("""
                SELECT idx, result_kind, result FROM {s}.submission_chunks
                WHERE submission_id = @id AND idx > @after AND state = 2 ORDER BY idx LIMIT @batch
                """), connection))
            {
                command.Parameters.AddWithValue("id", id);
                command.Parameters.AddWithValue("after", after);
                command.Parameters.AddWithValue("batch", SubmissionLimits.Batch);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken)) batch.Add(new ChunkResult(reader.GetInt64(0), ReadBody(reader, 1, 2), prefix));
            }
            foreach (var result in batch) yield return result;
            if (batch.Count < SubmissionLimits.Batch) yield break;
            after = batch[^1].Index;
        }
    }

    public async ValueTask<CancelOutcome> CancelAsync(long id, CancellationToken cancellationToken) => await Run(async (connection, tx) =>
    {
        var submission = await Lock(connection, tx, id, cancellationToken);
        if (submission is null) return new CancelOutcome(CancelStatus.NotFound, null);
        if (submission.IsTerminal) return new CancelOutcome(CancelStatus.AlreadyTerminal, submission);
        await Finish(connection, tx, id, SubmissionState.Cancelled, null, null, cancellationToken);
        return new CancelOutcome(CancelStatus.Cancelled, await Get(connection, tx, id, cancellationToken));
    }, cancellationToken);

    public async ValueTask<IReadOnlyList<ReservedChunk>> ReserveAsync(ReserveRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await Run<IReadOnlyList<ReservedChunk>>(async (connection, tx) =>
        {
            var candidates = new List<SubmissionCandidate>();
            await using (var find = new NpgsqlCommand { Connection = connection, Transaction = tx })
            {
                var order = request.Order switch
                {
                    SubmissionOrder.Newest => "s.id DESC",
                    SubmissionOrder.Random => "random()",
                    _ => "s.id",
                };
                if (request.PreferDistinct is { } label)
                {
                    find.CommandText = S($"""
                        SELECT s.id, l.value, s.chunks_ready, s.chunks_reserved FROM {"{s}"}.submissions s
                        LEFT JOIN {"{s}"}.submission_labels l ON l.submission_id = s.id AND l.key = @label
                        WHERE s.queue = @queue AND s.state = 0 AND (s.chunks_ready > 0 OR s.chunks_reserved > 0)
                        ORDER BY {order} LIMIT {ReservationPlanner.MaxDistinctCandidates}
                        """);
                    find.Parameters.AddWithValue("label", label);
                }
                else
                {
                    find.CommandText = S($"""
                        SELECT s.id, NULL::bigint, s.chunks_ready, s.chunks_reserved FROM {"{s}"}.submissions s
                        WHERE s.queue = @queue AND s.state = 0 AND s.chunks_ready > 0 ORDER BY {order} LIMIT @max
                        """);
                    find.Parameters.AddWithValue("max", request.Max);
                }
                find.Parameters.AddWithValue("queue", request.Queue);
                await using var reader = await find.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                    candidates.Add(new SubmissionCandidate(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
            }
            var plan = ReservationPlanner.Plan(candidates, request.Max, request.PreferDistinct is not null);
            var now = Now;
            var expires = now + request.LeaseDuration;
            var reserved = new List<ReservedChunk>();
            var heads = new Dictionary<long, Submission>();
            // Lock in id order (the one lock order of every writer); the candidates were read without locks, so recheck.
            foreach (var (submissionId, _) in plan.OrderBy(p => p.SubmissionId))
            {
                if (await Lock(connection, tx, submissionId, cancellationToken) is { State: SubmissionState.InProgress } head) heads[submissionId] = head;
            }
            foreach (var (submissionId, count) in plan)
            {
                if (!heads.TryGetValue(submissionId, out var head)) continue;
                var token = Guid.NewGuid().ToString("N");
                var taken = new List<ReservedChunk>(count);
                await using (var take = new NpgsqlCommand(S("""
                    WITH picked AS (
                        SELECT submission_id, idx FROM {s}.submission_chunks
                        WHERE submission_id = @id AND state = 0 ORDER BY idx LIMIT @n FOR UPDATE SKIP LOCKED)
                    UPDATE {s}.submission_chunks c SET state = 1, attempt = c.attempt + 1, lease_token = @token, lease_owner = @owner, lease_expires_at = @expires
                    FROM picked WHERE c.submission_id = picked.submission_id AND c.idx = picked.idx
                    RETURNING c.idx, c.attempt, c.body_kind, c.body
                    """), connection, tx))
                {
                    take.Parameters.AddWithValue("id", submissionId);
                    take.Parameters.AddWithValue("n", count);
                    take.Parameters.AddWithValue("token", token);
                    take.Parameters.Add(new NpgsqlParameter("owner", NpgsqlDbType.Text) { Value = (object?)request.Owner ?? DBNull.Value });
                    take.Parameters.AddWithValue("expires", expires);
                    await using var reader = await take.ExecuteReaderAsync(cancellationToken);
                    while (await reader.ReadAsync(cancellationToken))
                        taken.Add(new ReservedChunk(submissionId, reader.GetInt64(0), token, reader.GetInt32(1), expires, ReadBody(reader, 2, 3), head.Prefix, head.Labels));
                }
                if (taken.Count == 0) continue;
                await Counters(connection, tx, submissionId, -taken.Count, taken.Count, now, cancellationToken);
                taken.Sort((a, b) => a.Index.CompareTo(b.Index));
                reserved.AddRange(taken);
            }
            return reserved;
        }, cancellationToken);
    }

    /// <summary>
    /// Completions are committed in groups: concurrent ones (many consumers finishing chunks of one submission) share one
    /// transaction and one commit instead of queueing one by one behind the submission's row lock.
    /// </summary>
    public async ValueTask<ChunkOutcome> CompleteAsync(ChunkCompletion completion, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(completion);
        var pending = new PendingCompletion(completion);
        try
        {
            await _completions.Writer.WriteAsync(pending, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(PostgresSubmissionStore));
        }
        return await pending.Done.Task;
    }

    private async Task CompletionLoopAsync()
    {
        var batch = new List<PendingCompletion>(MaxGroup);
        while (await _completions.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxGroup && _completions.Reader.TryRead(out var next)) batch.Add(next);
            batch.Sort((a, b) => a.Completion.SubmissionId != b.Completion.SubmissionId
                ? a.Completion.SubmissionId.CompareTo(b.Completion.SubmissionId)
                : a.Completion.Index.CompareTo(b.Completion.Index));
            try
            {
                var outcomes = await Run(async (connection, tx) =>
                {
                    var results = new ChunkOutcome[batch.Count];
                    // In id order (batch is sorted): the one lock order of every writer.
                    for (var i = 0; i < batch.Count; i++) results[i] = await CompleteOne(connection, tx, batch[i].Completion, CancellationToken.None);
                    return results;
                }, CancellationToken.None);
                for (var i = 0; i < batch.Count; i++) batch[i].Done.TrySetResult(outcomes[i]);
            }
            catch (Exception e)
            {
                foreach (var pending in batch) pending.Done.TrySetException(e);
            }
        }
    }

    private sealed class PendingCompletion(ChunkCompletion completion)
    {
        public ChunkCompletion Completion { get; } = completion;

        public TaskCompletionSource<ChunkOutcome> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private async Task<ChunkOutcome> CompleteOne(NpgsqlConnection connection, NpgsqlTransaction tx, ChunkCompletion completion, CancellationToken cancellationToken)
    {
        {
            if (await Check(connection, tx, completion.SubmissionId, completion.Index, completion.LeaseToken, cancellationToken) is { } refused) return refused;
            var now = Now;
            await using (var done = new NpgsqlCommand(S("""
                UPDATE {s}.submission_chunks SET state = 2, result_kind = @kind, result = @result, operations = @ops,
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                WHERE submission_id = @id AND idx = @idx
                """), connection, tx))
            {
                done.Parameters.AddWithValue("kind", (short)completion.Result.Kind);
                done.Parameters.Add(new NpgsqlParameter("result", NpgsqlDbType.Bytea)
                {
                    Value = completion.Result.Kind is BodyKind.Json or BodyKind.Bytes ? completion.Result.Bytes.ToArray() : DBNull.Value,
                });
                done.Parameters.Add(new NpgsqlParameter("ops", NpgsqlDbType.Bigint) { Value = (object?)completion.Operations ?? DBNull.Value });
                done.Parameters.AddWithValue("id", completion.SubmissionId);
                done.Parameters.AddWithValue("idx", completion.Index);
                await done.ExecuteNonQueryAsync(cancellationToken);
            }
            await using (var progress = new NpgsqlCommand(S("""
                UPDATE {s}.submissions SET chunks_done = chunks_done + 1, chunks_reserved = chunks_reserved - 1,
                    operations_done = operations_done + coalesce(@ops, chunk_size), updated_at = @now,
                    state = CASE WHEN chunks_done + 1 >= chunks_total THEN 1 ELSE state END,
                    finished_at = CASE WHEN chunks_done + 1 >= chunks_total THEN @now ELSE finished_at END,
                    callback_due = CASE WHEN chunks_done + 1 >= chunks_total THEN callback IS NOT NULL ELSE callback_due END
                WHERE id = @id
                """), connection, tx))
            {
                progress.Parameters.Add(new NpgsqlParameter("ops", NpgsqlDbType.Bigint) { Value = (object?)completion.Operations ?? DBNull.Value });
                progress.Parameters.AddWithValue("now", now);
                progress.Parameters.AddWithValue("id", completion.SubmissionId);
                await progress.ExecuteNonQueryAsync(cancellationToken);
            }
            return new ChunkOutcome(ChunkOutcomeStatus.Ok, await Get(connection, tx, completion.SubmissionId, cancellationToken), null);
        }
    }

    public async ValueTask<ChunkOutcome> FailAsync(ChunkFailure failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        return await Run(async (connection, tx) =>
        {
            if (await Check(connection, tx, failure.SubmissionId, failure.Index, failure.LeaseToken, cancellationToken) is { } refused) return refused;
            await FailAttempt(connection, tx, failure.SubmissionId, failure.Index, failure.Error, cancellationToken);
            return new ChunkOutcome(ChunkOutcomeStatus.Ok, await Get(connection, tx, failure.SubmissionId, cancellationToken), null);
        }, cancellationToken);
    }

    public async ValueTask<ChunkOutcome> HeartbeatAsync(long submissionId, long index, string leaseToken, TimeSpan extendBy, CancellationToken cancellationToken) =>
        await Run(async (connection, tx) =>
        {
            if (await Check(connection, tx, submissionId, index, leaseToken, cancellationToken) is { } refused) return refused;
            await using var extend = new NpgsqlCommand(S("UPDATE {s}.submission_chunks SET lease_expires_at = @expires WHERE submission_id = @id AND idx = @idx"), connection, tx);
            extend.Parameters.AddWithValue("expires", Now + extendBy);
            extend.Parameters.AddWithValue("id", submissionId);
            extend.Parameters.AddWithValue("idx", index);
            await extend.ExecuteNonQueryAsync(cancellationToken);
            return new ChunkOutcome(ChunkOutcomeStatus.Ok, await Get(connection, tx, submissionId, cancellationToken), null);
        }, cancellationToken);

    public async ValueTask<ChunkOutcome> ReleaseAsync(long submissionId, long index, string leaseToken, CancellationToken cancellationToken) =>
        await Run(async (connection, tx) =>
        {
            if (await Check(connection, tx, submissionId, index, leaseToken, cancellationToken) is { } refused) return refused;
            await using var release = new NpgsqlCommand(S($"{ReleaseSql} WHERE submission_id = @id AND idx = @idx"), connection, tx);
            release.Parameters.AddWithValue("id", submissionId);
            release.Parameters.AddWithValue("idx", index);
            await release.ExecuteNonQueryAsync(cancellationToken);
            await Counters(connection, tx, submissionId, 1, -1, Now, cancellationToken);
            return new ChunkOutcome(ChunkOutcomeStatus.Ok, await Get(connection, tx, submissionId, cancellationToken), null);
        }, cancellationToken);

    public async ValueTask<int> ReleaseOwnerAsync(string owner, CancellationToken cancellationToken) => await Run(async (connection, tx) =>
    {
        var submissions = new List<long>();
        await using (var find = new NpgsqlCommand(S("SELECT DISTINCT submission_id FROM {s}.submission_chunks WHERE lease_owner = @owner AND state = 1 ORDER BY 1"), connection, tx))
        {
            find.Parameters.AddWithValue("owner", owner);
            await using var reader = await find.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken)) submissions.Add(reader.GetInt64(0));
        }
        var released = 0;
        var now = Now;
        foreach (var id in submissions)
        {
            await Lock(connection, tx, id, cancellationToken);
            await using var release = new NpgsqlCommand(S($"{ReleaseSql} WHERE submission_id = @id AND lease_owner = @owner AND state = 1"), connection, tx);
            release.Parameters.AddWithValue("id", id);
            release.Parameters.AddWithValue("owner", owner);
            var count = await release.ExecuteNonQueryAsync(cancellationToken);
            if (count > 0) await Counters(connection, tx, id, count, -count, now, cancellationToken);
            released += count;
        }
        return released;
    }, cancellationToken);

    public async ValueTask<int> ReclaimExpiredAsync(CancellationToken cancellationToken) => await Run(async (connection, tx) =>
    {
        var expired = new List<(long Id, long Index)>();
        await using (var find = new NpgsqlCommand(S("""
            SELECT submission_id, idx FROM {s}.submission_chunks WHERE state = 1 AND lease_expires_at <= @now
            ORDER BY submission_id, idx LIMIT @batch
            """), connection, tx))
        {
            find.Parameters.AddWithValue("now", Now);
            find.Parameters.AddWithValue("batch", SubmissionLimits.Batch);
            await using var reader = await find.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken)) expired.Add((reader.GetInt64(0), reader.GetInt64(1)));
        }
        var reclaimed = 0;
        foreach (var (id, index) in expired)
        {
            // Recheck under the submission's lock: the consumer may have finished it, or another server reclaimed it.
            if (await Lock(connection, tx, id, cancellationToken) is not { State: SubmissionState.InProgress }) continue;
            await using (var still = new NpgsqlCommand(S("SELECT 1 FROM {s}.submission_chunks WHERE submission_id = @id AND idx = @idx AND state = 1 AND lease_expires_at <= @now"), connection, tx))
            {
                still.Parameters.AddWithValue("id", id);
                still.Parameters.AddWithValue("idx", index);
                still.Parameters.AddWithValue("now", Now);
                if (await still.ExecuteScalarAsync(cancellationToken) is null) continue;
            }
            // An expired lease is a failed attempt: a consumer that dies mid-chunk must not get unlimited retries.
            await FailAttempt(connection, tx, id, index, "lease expired", cancellationToken);
            reclaimed++;
        }
        return reclaimed;
    }, cancellationToken);

    public async ValueTask<DateTimeOffset?> NextLeaseExpiryAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _db.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand(S("SELECT min(lease_expires_at) FROM {s}.submission_chunks WHERE state = 1"), connection);
            return await command.ExecuteScalarAsync(cancellationToken) is DateTime at ? new DateTimeOffset(at, TimeSpan.Zero) : null;
        }
        catch (NpgsqlException e)
        {
            throw Unavailable(e);
        }
    }

    public async ValueTask<IReadOnlyList<Submission>> CallbacksDueAsync(int limit, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _db.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand(S($"SELECT {Columns} FROM {{s}}.submissions WHERE callback_due ORDER BY id LIMIT @limit"), connection);
            command.Parameters.AddWithValue("limit", limit);
            return await ReadSubmissions(command, cancellationToken);
        }
        catch (NpgsqlException e)
        {
            throw Unavailable(e);
        }
    }

    public async ValueTask CallbackDoneAsync(long id, CancellationToken cancellationToken) => await Run(async (connection, tx) =>
    {
        await using var done = new NpgsqlCommand(S("UPDATE {s}.submissions SET callback_due = false WHERE id = @id"), connection, tx);
        done.Parameters.AddWithValue("id", id);
        return await done.ExecuteNonQueryAsync(cancellationToken);
    }, cancellationToken);

    public async ValueTask<int> DeleteFinishedAsync(DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken) => await Run(async (connection, tx) =>
    {
        await using var delete = new NpgsqlCommand(S("""
            WITH gone AS (
                DELETE FROM {s}.submissions WHERE id IN (
                    SELECT id FROM {s}.submissions WHERE state <> 0 AND finished_at < @before AND NOT callback_due
                    ORDER BY finished_at LIMIT @limit FOR UPDATE SKIP LOCKED)
                RETURNING id),
            chunks AS (DELETE FROM {s}.submission_chunks WHERE submission_id IN (SELECT id FROM gone)),
            labels AS (DELETE FROM {s}.submission_labels WHERE submission_id IN (SELECT id FROM gone))
            SELECT count(*) FROM gone
            """), connection, tx);
        delete.Parameters.AddWithValue("before", finishedBefore);
        delete.Parameters.AddWithValue("limit", limit);
        return (int)(long)(await delete.ExecuteScalarAsync(cancellationToken))!;
    }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        _completions.Writer.TryComplete();
        await _completionLoop;
        await _db.DisposeAsync();
    }

    private const string ReleaseSql = "UPDATE {s}.submission_chunks SET state = 0, attempt = attempt - 1, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL";

    /// <summary>Runs one change in one transaction, again when PostgreSQL aborted it for a deadlock or serialization conflict.</summary>
    private async Task<T> Run<T>(Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> change, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var connection = await _db.OpenConnectionAsync(cancellationToken);
                await using var tx = await connection.BeginTransactionAsync(cancellationToken);
                var result = await change(connection, tx);
                // Durability checkpoint: committed before the caller hears of it.
                await tx.CommitAsync(cancellationToken);
                return result;
            }
            catch (PostgresException e) when (e.SqlState is "40P01" or "40001" && attempt < 5)
            {
                // The whole transaction was rolled back; running it again is safe.
            }
            catch (NpgsqlException e) when (e is not PostgresException || e.SqlState!.StartsWith("08", StringComparison.Ordinal) || e.SqlState.StartsWith("57P", StringComparison.Ordinal))
            {
                throw Unavailable(e);
            }
        }
    }

    private static StoreUnavailableException Unavailable(Exception e) =>
        new($"PostgreSQL cannot be reached right now ({e.Message.TrimEnd('.')}). Retry later: the server reconnects on its own.", e);

    /// <summary>Locks the submission's row for the rest of the transaction and returns it; null when there is none.</summary>
    private async Task<Submission?> Lock(NpgsqlConnection connection, NpgsqlTransaction tx, long id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(S($"SELECT {Columns} FROM {{s}}.submissions WHERE id = @id FOR UPDATE"), connection, tx);
        command.Parameters.AddWithValue("id", id);
        var found = await ReadSubmissions(command, cancellationToken);
        return found.Count == 0 ? null : found[0];
    }

    private async Task<ChunkOutcome?> Check(NpgsqlConnection connection, NpgsqlTransaction tx, long submissionId, long index, string leaseToken, CancellationToken cancellationToken)
    {
        var submission = await Lock(connection, tx, submissionId, cancellationToken);
        if (submission is null) return new ChunkOutcome(ChunkOutcomeStatus.NotFound, null, $"There is no submission {submissionId}.");
        await using var read = new NpgsqlCommand(S("SELECT state, lease_token FROM {s}.submission_chunks WHERE submission_id = @id AND idx = @idx"), connection, tx);
        read.Parameters.AddWithValue("id", submissionId);
        read.Parameters.AddWithValue("idx", index);
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken)) return new ChunkOutcome(ChunkOutcomeStatus.NotFound, null, $"Submission {submissionId} has no chunk {index}.");
        var state = (ChunkState)reader.GetInt16(0);
        var token = reader.IsDBNull(1) ? null : reader.GetString(1);
        return ChunkRules.Refusal(state, token, leaseToken, submissionId, index) is { } refusal
            ? new ChunkOutcome(refusal.Status, submission, refusal.Detail)
            : null;
    }

    private async Task FailAttempt(NpgsqlConnection connection, NpgsqlTransaction tx, long submissionId, long index, string error, CancellationToken cancellationToken)
    {
        int attempt, maxRetries;
        await using (var read = new NpgsqlCommand(S("""
            SELECT c.attempt, s.max_chunk_retries FROM {s}.submission_chunks c JOIN {s}.submissions s ON s.id = c.submission_id
            WHERE c.submission_id = @id AND c.idx = @idx
            """), connection, tx))
        {
            read.Parameters.AddWithValue("id", submissionId);
            read.Parameters.AddWithValue("idx", index);
            await using var reader = await read.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            attempt = reader.GetInt32(0);
            maxRetries = reader.GetInt32(1);
        }
        var retry = attempt <= maxRetries;
        await using (var update = new NpgsqlCommand(S("""
            UPDATE {s}.submission_chunks SET state = @state, error = @error, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
            WHERE submission_id = @id AND idx = @idx
            """), connection, tx))
        {
            update.Parameters.AddWithValue("state", (short)(retry ? ChunkState.Ready : ChunkState.Failed));
            update.Parameters.AddWithValue("error", error);
            update.Parameters.AddWithValue("id", submissionId);
            update.Parameters.AddWithValue("idx", index);
            await update.ExecuteNonQueryAsync(cancellationToken);
        }
        if (retry) await Counters(connection, tx, submissionId, 1, -1, Now, cancellationToken);
        else await Finish(connection, tx, submissionId, SubmissionState.Failed, index, error, cancellationToken);
    }

    private async Task Finish(NpgsqlConnection connection, NpgsqlTransaction tx, long submissionId, SubmissionState state, long? failedIndex, string? error, CancellationToken cancellationToken)
    {
        await using (var skip = new NpgsqlCommand(S("""
            UPDATE {s}.submission_chunks SET state = 4, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
            WHERE submission_id = @id AND state IN (0, 1)
            """), connection, tx))
        {
            skip.Parameters.AddWithValue("id", submissionId);
            await skip.ExecuteNonQueryAsync(cancellationToken);
        }
        await using var finish = new NpgsqlCommand(S("""
            UPDATE {s}.submissions SET state = @state, chunks_ready = 0, chunks_reserved = 0, updated_at = @now, finished_at = @now,
                chunks_failed = chunks_failed + @failed, failed_chunk = @index, failed_error = @error,
                callback_due = (@state = 2 AND callback IS NOT NULL)
            WHERE id = @id
            """), connection, tx);
        finish.Parameters.AddWithValue("state", (short)state);
        finish.Parameters.AddWithValue("now", Now);
        finish.Parameters.AddWithValue("failed", failedIndex is null ? 0 : 1);
        finish.Parameters.Add(new NpgsqlParameter("index", NpgsqlDbType.Bigint) { Value = (object?)failedIndex ?? DBNull.Value });
        finish.Parameters.Add(new NpgsqlParameter("error", NpgsqlDbType.Text) { Value = (object?)error ?? DBNull.Value });
        finish.Parameters.AddWithValue("id", submissionId);
        await finish.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task Counters(NpgsqlConnection connection, NpgsqlTransaction tx, long submissionId, long ready, long reserved, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var update = new NpgsqlCommand(S("""
            UPDATE {s}.submissions SET chunks_ready = chunks_ready + @ready, chunks_reserved = chunks_reserved + @reserved, updated_at = @now WHERE id = @id
            """), connection, tx);
        update.Parameters.AddWithValue("ready", ready);
        update.Parameters.AddWithValue("reserved", reserved);
        update.Parameters.AddWithValue("now", now);
        update.Parameters.AddWithValue("id", submissionId);
        await update.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<Submission?> Get(NpgsqlConnection connection, NpgsqlTransaction? tx, long id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(S($"SELECT {Columns} FROM {{s}}.submissions WHERE id = @id"), connection, tx);
        command.Parameters.AddWithValue("id", id);
        var found = await ReadSubmissions(command, cancellationToken);
        return found.Count == 0 ? null : found[0];
    }

    private static async Task<List<Submission>> ReadSubmissions(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var list = new List<Submission>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new Submission
            {
                Id = reader.GetInt64(0),
                Queue = reader.GetString(1),
                State = (SubmissionState)reader.GetInt16(2),
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
                CreatedAt = reader.GetFieldValue<DateTimeOffset>(17),
                UpdatedAt = reader.GetFieldValue<DateTimeOffset>(18),
                FinishedAt = reader.IsDBNull(19) ? null : reader.GetFieldValue<DateTimeOffset>(19),
            });
        }
        return list;
    }

    private static ChunkBody ReadBody(NpgsqlDataReader reader, int kindColumn, int bytesColumn)
    {
        var kind = (BodyKind)reader.GetInt16(kindColumn);
        return kind is BodyKind.Json or BodyKind.Bytes ? new ChunkBody(kind, reader.GetFieldValue<byte[]>(bytesColumn)) : new ChunkBody(kind, default);
    }
}
