using System.Text.Json;
using Npgsql;

namespace Conveyor.Postgres;

/// <summary>
/// Transactional enqueue (the transactional-outbox pattern): an application that owns an <see cref="NpgsqlTransaction"/>
/// on the database a Conveyor server runs on (<c>conveyor serve --postgres …</c>) inserts jobs inside that transaction.
/// The job exists if and only if the transaction commits: no job for a rolled-back order, no lost job for a committed one.
/// Servers are woken by a NOTIFY that Postgres delivers only at commit.
/// </summary>
/// <example>
/// <code>
/// await using var tx = await connection.BeginTransactionAsync();
/// await InsertOrderAsync(connection, tx, order);
/// await ConveyorPostgres.EnqueueAsync(tx, "emails", new ConveyorJob { Kind = "order.confirm", PayloadJson = json });
/// await tx.CommitAsync();
/// </code>
/// </example>
public static class ConveyorPostgres
{
    /// <summary>The schema a server uses unless started with <c>--postgres-schema</c>.</summary>
    public const string DefaultSchema = "conveyor";

    /// <summary>Enqueues one job inside <paramref name="transaction"/>.</summary>
    public static async Task<EnqueuedJob> EnqueueAsync(
        NpgsqlTransaction transaction, string queue, ConveyorJob job, string schema = DefaultSchema, CancellationToken cancellationToken = default) =>
        (await EnqueueManyAsync(transaction, queue, [job], schema, cancellationToken).ConfigureAwait(false))[0];

    /// <summary>
    /// Enqueues jobs inside <paramref name="transaction"/> with one INSERT. Results are in request order; a job whose
    /// idempotency key the queue already holds (or that repeats one earlier in the list) is not inserted again and comes
    /// back <see cref="EnqueuedJob.Replayed"/> with the existing id.
    /// </summary>
    public static async Task<IReadOnlyList<EnqueuedJob>> EnqueueManyAsync(
        NpgsqlTransaction transaction, string queue, IReadOnlyList<ConveyorJob> jobs, string schema = DefaultSchema,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(jobs);
        var connection = transaction.Connection
            ?? throw new ArgumentException("The transaction is already committed or rolled back; enqueue inside a live transaction.", nameof(transaction));
        Validate.Name(queue, "queue");
        Validate.Schema(schema);
        if (jobs.Count == 0) return [];
        if (jobs.Count > 10_000) throw new ArgumentException($"Enqueue at most 10000 jobs per call, not {jobs.Count}.", nameof(jobs));
        foreach (var job in jobs) Validate.Job(job);

        var now = TruncateToMs(DateTimeOffset.UtcNow);
        var rowOf = new int[jobs.Count];
        var firstWithKey = new Dictionary<string, int>(StringComparer.Ordinal);
        var rows = new List<ConveyorJob>(jobs.Count);
        for (var i = 0; i < jobs.Count; i++)
        {
            if (jobs[i].IdempotencyKey is { } key)
            {
                if (firstWithKey.TryGetValue(key, out var first))
                {
                    rowOf[i] = -1 - first;
                    continue;
                }
                firstWithKey[key] = rows.Count;
            }
            rowOf[i] = rows.Count;
            rows.Add(jobs[i]);
        }
        var runAts = rows.Select(j => j.RunAt is { } at ? TruncateToMs(at.ToUniversalTime()) : now).ToArray();
        var anyAvailable = runAts.Any(at => at <= now);
        var partitions = rows.Where(j => j.PartitionKey is not null).Select(j => queue + "\u001f" + j.PartitionKey)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();

        var ids = new long[rows.Count];
        var inserted = new bool[rows.Count];
        try
        {
            await using var batch = new NpgsqlBatch(connection, transaction);
            if (partitions.Length > 0)
            {
                // Same lock as the server's inserts: a partition's jobs commit in id order, so they also run in it.
                var lockPartitions = new NpgsqlBatchCommand(Statements.LockPartitions);
                lockPartitions.Parameters.AddWithValue("schema", schema);
                lockPartitions.Parameters.AddWithValue("keys", partitions);
                batch.BatchCommands.Add(lockPartitions);
            }
            if (rows.Any(j => j.DestinationsJson is not null))
            {
                var markPush = new NpgsqlBatchCommand(Statements.For(schema, Statements.MarkPush));
                markPush.Parameters.AddWithValue("queue", queue);
                markPush.Parameters.AddWithValue("now", now);
                batch.BatchCommands.Add(markPush);
            }
            var insert = new NpgsqlBatchCommand(Statements.For(schema, Statements.InsertMany));
            var p = insert.Parameters;
            p.AddWithValue("queue", queue);
            p.AddWithValue("kind", rows.Select(j => j.Kind).ToArray());
            p.AddWithValue("state", runAts.Select(at => (short)(at > now ? 0 : 1)).ToArray());
            p.AddWithValue("priority", rows.Select(j => j.Priority).ToArray());
            p.AddWithValue("run_at", runAts);
            p.AddWithValue("max_attempts", rows.Select(j => j.MaxAttempts).ToArray());
            p.AddWithValue("payload", rows.Select(j => j.PayloadJson).ToArray());
            p.AddWithValue("idempotency_key", rows.Select(j => j.IdempotencyKey).ToArray());
            p.AddWithValue("partition_key", rows.Select(j => j.PartitionKey).ToArray());
            p.AddWithValue("tags", rows.Select(j => j.Tags is { Count: > 0 } tags ? JsonSerializer.Serialize(tags, TagsJson.Default.IReadOnlyListString) : null).ToArray());
            p.AddWithValue("trace_parent", rows.Select(j => j.TraceParent).ToArray());
            p.AddWithValue("destinations", rows.Select(j => j.DestinationsJson).ToArray());
            p.AddWithValue("now", now);
            batch.BatchCommands.Add(insert);
            if (anyAvailable)
            {
                // Delivered by Postgres only when (and if) the transaction commits.
                var notify = new NpgsqlBatchCommand("SELECT pg_notify(@channel, @queue)");
                notify.Parameters.AddWithValue("channel", schema + "_jobs");
                notify.Parameters.AddWithValue("queue", queue);
                batch.BatchCommands.Add(notify);
            }
            await using (var r = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                if (partitions.Length > 0) await r.NextResultAsync(cancellationToken).ConfigureAwait(false);
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var row = (int)r.GetInt64(0) - 1;
                    ids[row] = r.GetInt64(1);
                    inserted[row] = r.GetBoolean(2);
                }
                while (await r.NextResultAsync(cancellationToken).ConfigureAwait(false)) { }
            }

            var replayed = Enumerable.Range(0, rows.Count).Where(i => !inserted[i]).ToArray();
            if (replayed.Length > 0)
            {
                await using var find = new NpgsqlCommand(Statements.For(schema, Statements.FindIdempotent), connection, transaction);
                find.Parameters.AddWithValue("queue", queue);
                find.Parameters.AddWithValue("keys", replayed.Select(i => rows[i].IdempotencyKey!).ToArray());
                var existing = new Dictionary<string, long>(StringComparer.Ordinal);
                await using (var r = await find.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) existing[r.GetString(0)] = r.GetInt64(1);
                }
                foreach (var i in replayed) ids[i] = existing[rows[i].IdempotencyKey!];
            }
        }
        catch (PostgresException e) when (e.SqlState is "42P01" or "3F000")
        {
            throw new InvalidOperationException(
                $"The Conveyor schema '{schema}' is not in this database. Start a Conveyor server once with --postgres on this database " +
                "(it creates and migrates the schema), or pass the schema name it uses (--postgres-schema).", e);
        }

        var results = new EnqueuedJob[jobs.Count];
        for (var i = 0; i < jobs.Count; i++)
        {
            var row = rowOf[i];
            results[i] = row >= 0 ? new EnqueuedJob(ids[row], !inserted[row]) : new EnqueuedJob(ids[-1 - row], Replayed: true);
        }
        return results;
    }

    private static DateTimeOffset TruncateToMs(DateTimeOffset at) =>
        new(at.UtcTicks - at.UtcTicks % TimeSpan.TicksPerMillisecond, TimeSpan.Zero);
}
