using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using NpgsqlTypes;

namespace Conveyor.Bench.HttpFloor;

/// <summary>
/// The least a job queue that keeps its jobs in PostgreSQL, for several servers to share, can do (--postgres-queue):
/// each job is a row of one table (its serial key and one partial index on the ready jobs), inserted durably, leased with
/// <c>FOR UPDATE SKIP LOCKED</c> (committed without waiting for the flush, as Conveyor's PostgreSQL leases are) and
/// marked done durably; inserts and acks are each folded into one transaction per group. Three row versions a job,
/// as Conveyor's store writes, without its other indexes, counts, events, retries, limits or lease expiry: what W1–W3
/// get from PostgreSQL when a job's state lives in the database, not a queue to use.
/// </summary>
internal sealed class PostgresQueueFloor : IDisposable
{
    private const string Table = "conveyor_http_floor_jobs";
    private readonly InsertLoop _inserts;
    private readonly AckLoop _acks;
    private readonly NpgsqlDataSource _leases;
    private readonly ConcurrentDictionary<string, FloorWaiters> _waiting = new(StringComparer.Ordinal);

    public PostgresQueueFloor(string connectionString)
    {
        using (var setup = new NpgsqlConnection(connectionString))
        {
            setup.Open();
            using var create = new NpgsqlCommand(
                $"""
                DROP TABLE IF EXISTS {Table};
                CREATE TABLE {Table} (id bigserial PRIMARY KEY, queue text NOT NULL, state smallint NOT NULL, payload bytea NOT NULL);
                CREATE INDEX {Table}_ready ON {Table} (queue, id) WHERE state = 1;
                """, setup);
            create.ExecuteNonQuery();
        }
        _inserts = new InsertLoop(connectionString);
        _acks = new AckLoop(connectionString);
        var leases = new NpgsqlConnectionStringBuilder(connectionString)
        {
            MaxAutoPrepare = 8,
            NoResetOnClose = true, // as Conveyor's store: nothing session-scoped is left on a pooled connection
        };
        leases.Options = $"{leases.Options} -c synchronous_commit=off".TrimStart();
        _leases = NpgsqlDataSource.Create(leases.ConnectionString);
    }

    public void Map(WebApplication app)
    {
        app.MapPost("/v1/queues/{queue}/jobs", (string queue, HttpContext context) => EnqueueAsync(queue, context, batch: false));
        app.MapPost("/v1/queues/{queue}/jobs/batch", (string queue, HttpContext context) => EnqueueAsync(queue, context, batch: true));
        app.MapPost("/v1/queues/{queue}/lease", LeaseAsync);
        app.MapPost("/v1/jobs/ack", AckAsync);
    }

    private async Task EnqueueAsync(string queue, HttpContext context, bool batch)
    {
        var payloads = FloorHttp.Payloads(await FloorHttp.ReadBodyAsync(context), batch);
        var ids = await _inserts.SubmitAsync((queue, payloads));
        var created = DateTimeOffset.UtcNow;
        var jobs = new FloorJob[payloads.Count];
        for (var i = 0; i < jobs.Length; i++) jobs[i] = new FloorJob(ids[i], queue, payloads[i], created);
        Waiters(queue).WakeAll();
        await FloorHttp.WriteEnqueuedAsync(context, batch, jobs);
    }

    private async Task LeaseAsync(string queue, HttpContext context)
    {
        var (max, wait) = FloorHttp.LeaseRequest(await FloorHttp.ReadBodyAsync(context));
        var jobs = await Waiters(queue).PollAsync(() => ClaimAsync(queue, max, context.RequestAborted), wait, context.RequestAborted);
        await FloorHttp.WriteLeasedAsync(context, jobs);
    }

    private async Task<List<FloorJob>> ClaimAsync(string queue, int max, CancellationToken cancellationToken)
    {
        await using var claim = _leases.CreateCommand(
            $"""
            UPDATE {Table} SET state = 2
            WHERE id IN (SELECT id FROM {Table} WHERE queue = $1 AND state = 1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id, payload
            """);
        claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = queue });
        claim.Parameters.Add(new NpgsqlParameter<int> { TypedValue = max });
        var jobs = new List<FloorJob>();
        var leased = DateTimeOffset.UtcNow;
        await using (var reader = await claim.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var id = reader.GetInt64(0);
                jobs.Add(new FloorJob(id, queue, reader.GetFieldValue<byte[]>(1), leased) { Token = "t" + id });
            }
        }
        jobs.Sort((a, b) => a.Id.CompareTo(b.Id));
        return jobs;
    }

    private async Task AckAsync(HttpContext context)
    {
        var acks = FloorHttp.Acks(await FloorHttp.ReadBodyAsync(context));
        var ids = new long[acks.Count];
        for (var i = 0; i < ids.Length; i++) ids[i] = acks[i].Id;
        var done = await _acks.SubmitAsync(ids);
        var statuses = new int[acks.Count];
        for (var i = 0; i < statuses.Length; i++) statuses[i] = done.Contains(acks[i].Id) ? 200 : 409;
        await FloorHttp.WriteAckResultsAsync(context, acks, statuses);
    }

    private FloorWaiters Waiters(string queue) => _waiting.GetOrAdd(queue, _ => new FloorWaiters());

    public void Dispose()
    {
        _inserts.Dispose();
        _acks.Dispose();
        _leases.Dispose();
    }

    /// <summary>A group-commit loop whose commit is one prepared statement (its own durable transaction) on a connection of its own.</summary>
    private abstract class StatementLoop<TItem, TResult> : GroupCommitLoop<TItem, TResult>
    {
        private readonly NpgsqlConnection _connection;

        protected StatementLoop(string connectionString, string sql, params NpgsqlParameter[] parameters)
        {
            _connection = new NpgsqlConnection(connectionString);
            _connection.Open();
            Statement = new NpgsqlCommand(sql, _connection);
            Statement.Parameters.AddRange(parameters);
            Statement.Prepare();
            Start();
        }

        protected NpgsqlCommand Statement { get; }

        public override void Dispose()
        {
            base.Dispose();
            Statement.Dispose();
            _connection.Dispose();
        }
    }

    /// <summary>Every enqueue request of a group in one durable transaction; each request gets its jobs' ids.</summary>
    private sealed class InsertLoop(string connectionString) : StatementLoop<(string Queue, List<byte[]> Payloads), long[]>(
        connectionString,
        // The ids are drawn in the arrays' order, so in ascending order they are the rows' ids.
        $"INSERT INTO {Table} (queue, state, payload) SELECT q, 1, p FROM unnest($1::text[], $2::bytea[]) AS t(q, p) RETURNING id",
        new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text },
        new NpgsqlParameter<byte[][]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea })
    {
        protected override long[][] CommitGroup(List<(string Queue, List<byte[]> Payloads)> items)
        {
            var queues = new List<string>();
            var payloads = new List<byte[]>();
            foreach (var (queue, jobs) in items)
            {
                foreach (var payload in jobs)
                {
                    queues.Add(queue);
                    payloads.Add(payload);
                }
            }
            ((NpgsqlParameter<string[]>)Statement.Parameters[0]).TypedValue = [.. queues];
            ((NpgsqlParameter<byte[][]>)Statement.Parameters[1]).TypedValue = [.. payloads];
            var ids = new List<long>(payloads.Count);
            using (var reader = Statement.ExecuteReader())
            {
                while (reader.Read()) ids.Add(reader.GetInt64(0));
            }
            ids.Sort();
            var results = new long[items.Count][];
            var next = 0;
            for (var i = 0; i < items.Count; i++)
            {
                results[i] = ids.GetRange(next, items[i].Payloads.Count).ToArray();
                next += results[i].Length;
            }
            return results;
        }
    }

    /// <summary>Every ack request of a group in one durable transaction; each request learns which of its jobs were running.</summary>
    private sealed class AckLoop(string connectionString) : StatementLoop<long[], HashSet<long>>(
        connectionString,
        $"UPDATE {Table} SET state = 3 WHERE id = ANY($1) AND state = 2 RETURNING id",
        new NpgsqlParameter<long[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint })
    {
        protected override HashSet<long>[] CommitGroup(List<long[]> items)
        {
            ((NpgsqlParameter<long[]>)Statement.Parameters[0]).TypedValue = [.. items.SelectMany(ids => ids)];
            var done = new HashSet<long>();
            using (var reader = Statement.ExecuteReader())
            {
                while (reader.Read()) done.Add(reader.GetInt64(0));
            }
            return [.. items.Select(_ => done)];
        }
    }
}
