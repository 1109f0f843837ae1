using Npgsql;

namespace Conveyor.Storage.Postgres;

/// <summary>
/// The store's SQL, one dialect, as named constants per table. <c>{s}</c> stands for the schema; <see cref="Statements"/>
/// fills it in once per store. Every time is a parameter (<c>@now</c>) from the store's <see cref="TimeProvider"/>.
/// </summary>
internal static class Sql
{
    public static string For(string schema, string text) => text.Replace("{s}", "\"" + schema + "\"", StringComparison.Ordinal);

    /// <summary>The NOTIFY channel of a schema; the payload is the queue name.</summary>
    public static string Channel(string schema) => schema + "_jobs";
}

/// <summary>
/// A hot statement sent with positional parameters (<c>$1</c>, <c>$2</c>, …). With named ones (<c>@queue</c>) Npgsql parses
/// the whole text and builds a rewritten copy on every execution (the largest allocation of a PostgreSQL W3 job, the insert
/// being 1.5 KB of SQL); positional text it sends as it is. The SQL stays written with names: they are numbered once, here,
/// in the order given, and <see cref="Add{T}"/> checks that the values come in that order.
/// </summary>
internal sealed partial class PositionalSql
{
    private readonly string[] _names;

    public PositionalSql(string schema, string namedText, params string[] names)
    {
        _names = names;
        var used = new bool[names.Length];
        Text = Placeholder().Replace(Sql.For(schema, namedText), match =>
        {
            var index = Array.IndexOf(names, match.Groups[1].Value);
            if (index < 0) throw new InvalidOperationException($"The statement uses {match.Value}, which is not among its parameters.");
            used[index] = true;
            return "$" + (index + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        });
        var unused = Array.IndexOf(used, false);
        if (unused >= 0) throw new InvalidOperationException($"The statement does not use its parameter @{names[unused]}.");
    }

    public string Text { get; }

    /// <summary>Adds the next value, which must be the parameter <paramref name="name"/>.</summary>
    public void Add<T>(NpgsqlParameterCollection parameters, string name, T value)
    {
        if (parameters.Count >= _names.Length || _names[parameters.Count] != name)
            throw new InvalidOperationException($"Parameter @{name} added out of order for this statement.");
        parameters.Add(new NpgsqlParameter<T> { TypedValue = value });
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"(?<![@\w])@([A-Za-z_]\w*)")]
    private static partial System.Text.RegularExpressions.Regex Placeholder();
}

/// <summary>Statements on <c>jobs</c> (and the event rows written beside them).</summary>
internal static class JobsSql
{
    public const string Columns =
        "id, queue, kind, state, payload::text, priority, run_at, attempt, max_attempts, idempotency_key, partition_key, tags, " +
        "result::text, errors::text, trace_parent, created_at, updated_at, started_at, finished_at, lease_token, lease_owner, " +
        "lease_expires_at, progress::text, destinations::text";

    public const string ById = $"SELECT {Columns} FROM {{s}}.jobs WHERE id = @id";
    public const string ByIds = $"SELECT {Columns} FROM {{s}}.jobs WHERE id = ANY(@ids) ORDER BY id";
    public const string StatesByIds = "SELECT id, state FROM {s}.jobs WHERE id = ANY(@ids)";
    public const string FinishedAmong = "SELECT id FROM {s}.jobs WHERE id = ANY(@ids) AND state >= 3";

    /// <summary>
    /// Partition order across concurrent inserts: ids come from one sequence, but transactions can commit out of id order.
    /// Inserts into a partition therefore hold a transaction advisory lock on it while they take ids and commit, so a
    /// lease can never see a partition's later job without its earlier one. Keys are locked in a fixed order (no deadlock).
    /// </summary>
    public const string LockPartitions =
        "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtext(@schema), hashtext(k)) FROM unnest(@keys::text[]) AS k ORDER BY hashtext(k), k) AS l";

    /// <summary>
    /// Bulk insert in one statement. Ids are drawn after the sort by ordinal (PostgreSQL evaluates a volatile select list
    /// after ORDER BY), so they increase in request order. A repeated idempotency key inserts nothing (replay).
    /// </summary>
    public const string InsertMany = """
        WITH input AS (
            SELECT * FROM unnest(@queue::text[], @kind::text[], @state::smallint[], @priority::int[], @run_at::timestamptz[],
                                 @max_attempts::int[], @payload::text[], @idempotency_key::text[], @partition_key::text[],
                                 @tags::text[], @trace_parent::text[], @destinations::text[])
                     WITH ORDINALITY AS t(queue, kind, state, priority, run_at, max_attempts, payload, idempotency_key, partition_key,
                                          tags, trace_parent, destinations, ord)
        ), numbered AS (
            SELECT nextval('{s}.jobs_id_seq') AS id, input.* FROM input ORDER BY ord
        ), inserted AS (
            INSERT INTO {s}.jobs (id, queue, kind, state, priority, run_at, max_attempts, payload, idempotency_key, partition_key,
                                  tags, trace_parent, created_at, updated_at, destinations)
            SELECT id, queue, kind, state, priority, run_at, max_attempts, payload::json, idempotency_key, partition_key,
                   CASE WHEN tags IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text(tags::json)) END, trace_parent, @now, @now,
                   destinations::json
            FROM numbered ORDER BY id
            ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id
        )
        SELECT n.ord, n.id, i.id IS NOT NULL FROM numbered n LEFT JOIN inserted i ON i.id = n.id ORDER BY n.ord
        """;

    /// <summary>
    /// <see cref="InsertMany"/> for a batch without idempotency keys, the common case: nothing can conflict, so there is no
    /// ON CONFLICT arbiter (a speculative insertion per row) and no join to tell the inserted from the replayed. Ids are drawn
    /// in request order exactly as there; the store pairs the returned ids, sorted, with the rows in request order.
    /// </summary>
    public const string InsertManyNew = """
        WITH numbered AS (
            SELECT nextval('{s}.jobs_id_seq') AS id, t.*
            FROM unnest(@queue::text[], @kind::text[], @state::smallint[], @priority::int[], @run_at::timestamptz[],
                        @max_attempts::int[], @payload::text[], @partition_key::text[], @tags::text[], @trace_parent::text[],
                        @destinations::text[])
                 WITH ORDINALITY AS t(queue, kind, state, priority, run_at, max_attempts, payload, partition_key, tags,
                                      trace_parent, destinations, ord)
            ORDER BY ord
        )
        INSERT INTO {s}.jobs (id, queue, kind, state, priority, run_at, max_attempts, payload, partition_key, tags, trace_parent,
                              created_at, updated_at, destinations)
        SELECT id, queue, kind, state, priority, run_at, max_attempts, payload::json, partition_key,
               CASE WHEN tags IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text(tags::json)) END, trace_parent, @now, @now,
               destinations::json
        FROM numbered
        RETURNING id
        """;

    public const string FindIdempotent = """
        SELECT j.queue, j.idempotency_key, j.id, j.created_at FROM {s}.jobs j
        JOIN unnest(@queue::text[], @key::text[]) AS k(queue, key) ON j.queue = k.queue AND j.idempotency_key = k.key
        """;

    public const string Notify = "SELECT count(pg_notify(@channel, q)) FROM unnest(@queues::text[]) AS q";

    /// <summary>A wake-up alone: its commit need not wait for the WAL flush (it changes no data).</summary>
    public const string NotifyAsync =
        "SELECT set_config('synchronous_commit', 'off', true), count(pg_notify(@channel, q)) FROM unnest(@queues::text[]) AS q";

    /// <summary>
    /// The lease: available jobs of the queue in priority, run_at, id order, skipping rows another lease holds, and only the
    /// oldest unfinished job of each partition (so at most one runs per partition across every server, in id order).
    /// Its commit does not wait for the WAL flush (synchronous_commit off for this transaction only): a database crash
    /// may forget a lease of the last moments, and the job is simply leased again, at least once, the trade-off the
    /// SQLite store makes for every lease. Completions and failures stay fully durable.
    /// This is the fast path for queues without limits: it leases nothing from a queue with a concurrency or rate limit
    /// and says so instead (the last column; a row of nulls before it when nothing was leased), and the store then takes
    /// <see cref="LeaseLimited"/>.
    /// </summary>
    public const string Lease = $$"""
        WITH queue_row AS (
            SELECT q.paused, (q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL) AS limited FROM {s}.queues q WHERE q.name = @queue
        ), picked AS (
            SELECT j.id AS picked_id FROM {s}.jobs j
            WHERE j.queue = @queue AND j.state = 1
              AND NOT EXISTS (SELECT 1 FROM queue_row WHERE queue_row.paused OR queue_row.limited)
              AND {{PartitionHead}}
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT @max
            FOR UPDATE OF j SKIP LOCKED
        ), leased AS (
            {{LeasePicked}}
        )
        SELECT leased.*, flag.limited
        FROM (SELECT coalesce((SELECT limited AND NOT paused FROM queue_row), false) AS limited) AS flag
        LEFT JOIN leased ON true
        """;

    /// <summary>Only the oldest unfinished job of a partition may run.</summary>
    private const string PartitionHead = """
        (j.partition_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM {s}.jobs h
                    WHERE h.queue = j.queue AND h.partition_key = j.partition_key AND h.state < 3 AND h.id < j.id))
        """;

    /// <summary>
    /// The picked ids are handed over as one array (<c>= ANY(ARRAY(...))</c>), not joined: each is then one primary-key probe
    /// whatever the statistics say. Joined, the planner hashed the whole jobs table for every lease once it judged 1,000 picked
    /// rows a large share of it (EXPLAIN ANALYZE on 100,000 waiting jobs: 70 ms per lease of 1,000, 29 ms with the array).
    /// A job's token is the lease call's random prefix (<c>@token</c>, 128 bits from the server) and the job's id: distinct per
    /// job and attempt, without a <c>gen_random_uuid()</c> per row (3.2 µs per row here, 0.45 µs for the concatenation).
    /// </summary>
    private const string LeasePicked = $$"""
        UPDATE {s}.jobs j
            SET state = 2, attempt = j.attempt + 1, lease_token = @token || to_hex(j.id), lease_owner = @owner,
                lease_expires_at = @expires, started_at = @now, updated_at = @now, progress = NULL
            FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
            WHERE j.id = ANY(ARRAY(SELECT picked_id FROM picked))
            RETURNING {{Columns}}
        """;

    /// <summary>
    /// First half of a lease from a queue with limits, sent in one batch (one implicit transaction) with
    /// <see cref="LeaseLimited"/>: the queue row is locked, so leases of that queue on every server take turns, and the
    /// second statement's fresh snapshot sees every earlier lease and completion. A queue without limits is not locked
    /// (no row comes back and the store goes back to the fast path).
    /// </summary>
    public const string LockLimitedQueue = """
        SELECT paused, max_running, rate_per_second, tokens, tokens_at FROM {s}.queues
        WHERE name = @queue AND (max_running IS NOT NULL OR rate_per_second IS NOT NULL)
        FOR UPDATE
        """;

    /// <summary>
    /// Second half: leases at most max_running minus the running jobs, and at most the whole tokens in the queue's bucket
    /// (capacity max(1, rate), refilled by the time since tokens_at), then takes the leased jobs' tokens out of it.
    /// A null limit allows anything (least ignores nulls). A paused queue leases nothing.
    /// </summary>
    public const string LeaseLimited = $$"""
        WITH queue_row AS (
            SELECT q.max_running, q.rate_per_second AS rate,
                   CASE WHEN q.rate_per_second IS NOT NULL THEN
                       least(greatest(1, q.rate_per_second),
                             coalesce(q.tokens + q.rate_per_second * greatest(0, extract(epoch FROM @now - q.tokens_at)), 'Infinity'))
                   END AS tokens
            FROM {s}.queues q WHERE q.name = @queue AND NOT q.paused
        ), allowed AS (
            SELECT greatest(0, least(@max,
                       CASE WHEN q.max_running IS NOT NULL
                           THEN q.max_running - (SELECT count(*) FROM {s}.jobs r WHERE r.queue = @queue AND r.state = 2) END,
                       floor(q.tokens + 1e-9::float8)))::bigint AS n,
                   q.rate, q.tokens
            FROM queue_row q
        ), picked AS (
            SELECT j.id AS picked_id FROM {s}.jobs j
            WHERE j.queue = @queue AND j.state = 1 AND {{PartitionHead}}
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT coalesce((SELECT n FROM allowed), 0)
            FOR UPDATE OF j SKIP LOCKED
        ), leased AS (
            {{LeasePicked}}
        ), spent AS (
            UPDATE {s}.queues q SET tokens = a.tokens - (SELECT count(*) FROM leased), tokens_at = greatest(q.tokens_at, @now)
            FROM allowed a
            WHERE q.name = @queue AND a.rate IS NOT NULL AND EXISTS (SELECT 1 FROM leased)
        )
        SELECT * FROM leased
        """;

    /// <summary>Like a lease, a heartbeat's commit does not wait for the flush: a forgotten one only lets the lease lapse sooner.</summary>
    public const string Heartbeat = """
        UPDATE {s}.jobs SET lease_expires_at = @expires, progress = coalesce(@progress::json, progress)
        FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
        WHERE id = @id AND state = 2 AND lease_token = @token
        """;

    /// <summary>
    /// Sent just before <see cref="CompleteMany"/> in the same implicit transaction (it lasts until that transaction ends): the
    /// plan of the completes, made once per connection and then reused, must look every acked id up by primary key whatever
    /// the statistics and the table's size were when it was made. A plan made while the table was small (a new schema in its
    /// first minute, before autovacuum first analyzed it) otherwise scanned the whole table for each ack, and kept doing so as
    /// the table grew.
    /// </summary>
    public const string PlanByKey = "SELECT set_config('enable_seqscan', 'off', true)";

    /// <summary>
    /// The happy path of an ack batch in one statement: completes with their tokens checked in the WHERE clause. A finish
    /// wakes the queue's waiting leases on every server when it lets another job run: the next of its partition, or one
    /// more under the queue's concurrency limit.
    /// The state is tested as <c>(j.state = 2) IS TRUE</c> (the same rows) so that the planner cannot read the jobs through the
    /// reaper's partial index <c>jobs_leases</c>: the prepared (generic) plan otherwise hashed every running job of every
    /// queue for each ack, whenever the statistics said few jobs run; with <see cref="PlanByKey"/> each acked id is one
    /// primary-key probe.
    /// </summary>
    public const string CompleteMany = """
        WITH done AS (
            UPDATE {s}.jobs j
            SET state = 3, result = i.result::json, finished_at = @now, updated_at = @now,
                lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, progress = NULL
            FROM unnest(@ids::bigint[], @tokens::text[], @results::text[]) AS i(id, token, result)
            WHERE j.id = i.id AND (j.state = 2) IS TRUE AND (i.token IS NULL OR j.lease_token = i.token)
            RETURNING j.id, j.queue, j.kind, j.partition_key, j.started_at
        ), woken AS (
            SELECT pg_notify(@channel, queue) FROM (
                SELECT queue FROM done WHERE partition_key IS NOT NULL
                UNION
                SELECT name FROM {s}.queues WHERE max_running IS NOT NULL AND name IN (SELECT queue FROM done)) AS q
        )
        SELECT id, queue, kind, started_at, (SELECT count(*) FROM woken) FROM done
        """;

    /// <summary>The general ack path locks its rows first (in id order), decides in memory, then writes.</summary>
    public const string LockForAck =
        "SELECT id, state, lease_token, attempt, max_attempts, started_at, queue, kind, partition_key, run_at, " +
        "coalesce((SELECT q.max_running IS NOT NULL FROM {s}.queues q WHERE q.name = j.queue), false) " +
        "FROM {s}.jobs j WHERE id = ANY(@ids) ORDER BY id FOR UPDATE OF j";

    private const string ClearLease = "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, progress = NULL";

    /// <summary>Appends one entry (JSON text) to the errors array without reformatting what is there.</summary>
    private const string AppendError =
        "(CASE WHEN j.errors IS NULL THEN '[' || i.error || ']' ELSE left(j.errors::text, -1) || ',' || i.error || ']' END)::json";

    public const string CompleteSet = $$"""
        UPDATE {s}.jobs j SET state = 3, result = i.result::json, finished_at = @now, updated_at = @now, {{ClearLease}}
        FROM unnest(@ids::bigint[], @results::text[]) AS i(id, result) WHERE j.id = i.id
        """;

    public const string RetrySet = $$"""
        UPDATE {s}.jobs j SET state = i.state, run_at = i.run_at, errors = {{AppendError}}, result = coalesce(i.result::json, j.result),
            updated_at = @now, {{ClearLease}}
        FROM unnest(@ids::bigint[], @states::smallint[], @run_ats::timestamptz[], @errors::text[], @results::text[]) AS i(id, state, run_at, error, result)
        WHERE j.id = i.id
        """;

    public const string DeadSet = $$"""
        UPDATE {s}.jobs j SET state = 4, errors = {{AppendError}}, result = coalesce(i.result::json, j.result), finished_at = @now,
            updated_at = @now, {{ClearLease}}
        FROM unnest(@ids::bigint[], @errors::text[], @results::text[]) AS i(id, error, result) WHERE j.id = i.id
        """;

    public const string ReleaseSet = $$"""
        UPDATE {s}.jobs j SET state = 1, attempt = j.attempt - 1, updated_at = @now, {{ClearLease}}
        FROM unnest(@ids::bigint[]) AS i(id) WHERE j.id = i.id
        """;

    public const string Cancel = $$"""
        WITH c AS (
            UPDATE {s}.jobs SET state = 5, finished_at = @now, updated_at = @now, {{ClearLease}}
            WHERE id = @id AND state < 3
            RETURNING id, queue, attempt, partition_key
        ), ev AS (
            INSERT INTO {s}.job_events (job_id, at, type, state, attempt, message) SELECT id, @now, 'cancelled', 5, attempt, NULL FROM c
        ), woken AS (
            SELECT pg_notify(@channel, queue) FROM c
            WHERE partition_key IS NOT NULL OR EXISTS (SELECT 1 FROM {s}.queues q WHERE q.name = c.queue AND q.max_running IS NOT NULL)
        )
        SELECT attempt, (SELECT count(*) FROM woken) FROM c
        """;

    public const string LockOne = "SELECT state FROM {s}.jobs WHERE id = @id FOR UPDATE";

    public const string Requeue = $$"""
        UPDATE {s}.jobs SET state = 1, attempt = 0, run_at = @now, started_at = NULL, finished_at = NULL, updated_at = @now, {{ClearLease}}
        WHERE id = @id RETURNING queue
        """;

    /// <summary>Scheduled jobs whose time has come become available; the queues that got work are woken.</summary>
    public const string PromoteDue = """
        WITH due AS (
            SELECT id FROM {s}.jobs WHERE state = 0 AND run_at <= @now ORDER BY run_at LIMIT @limit FOR UPDATE SKIP LOCKED
        ), promoted AS (
            UPDATE {s}.jobs j SET state = 1 FROM due WHERE j.id = due.id AND j.state = 0 RETURNING j.queue
        ), woken AS (
            SELECT pg_notify(@channel, queue) FROM (SELECT DISTINCT queue FROM promoted) AS q
        )
        SELECT count(*), (SELECT count(*) FROM woken) FROM promoted
        """;

    /// <summary>
    /// The reaper: a lease that lapsed without a heartbeat counts its attempt; the job is available again, or dead when it
    /// has none left. Both the attempt's start and the expiry are written as event rows.
    /// </summary>
    public const string ExpireLeases = $$"""
        WITH expired AS (
            SELECT id FROM {s}.jobs WHERE state = 2 AND lease_expires_at <= @now ORDER BY lease_expires_at LIMIT @limit FOR UPDATE SKIP LOCKED
        ), reaped AS (
            UPDATE {s}.jobs j SET
                state = CASE WHEN j.attempt >= j.max_attempts THEN 4 ELSE 1 END,
                run_at = CASE WHEN j.attempt >= j.max_attempts THEN j.run_at ELSE least(j.run_at, @now) END,
                errors = CASE WHEN j.attempt >= j.max_attempts
                    THEN (CASE WHEN j.errors IS NULL THEN '[' ELSE left(j.errors::text, -1) || ',' END
                          || '{"attempt":' || j.attempt || ',' || @error_tail || ']')::json
                    ELSE j.errors END,
                finished_at = CASE WHEN j.attempt >= j.max_attempts THEN @now END,
                updated_at = @now, {{ClearLease}}
            FROM expired WHERE j.id = expired.id AND j.state = 2
            RETURNING j.id, j.queue, j.kind, j.state, j.attempt, j.started_at
        ), ev AS (
            INSERT INTO {s}.job_events (job_id, at, type, state, attempt, message)
            SELECT id, at, type, state, attempt, message FROM (
                SELECT id, started_at AS at, 'started' AS type, 2::smallint AS state, attempt, NULL::text AS message, 0 AS k FROM reaped
                UNION ALL
                SELECT id, @now, 'lease_expired', state, attempt,
                       CASE WHEN state = 4 THEN 'lease expired with no attempts left' ELSE 'lease expired without a heartbeat' END, 1
                FROM reaped) AS e
            ORDER BY id, k
        ), woken AS (
            SELECT pg_notify(@channel, queue) FROM (SELECT DISTINCT queue FROM reaped) AS q
        )
        SELECT id, queue, kind, state, (SELECT count(*) FROM woken) FROM reaped
        """;

    /// <summary>
    /// Deletes one job that is not running, with its events, in one batch with <see cref="LockOne"/>: once the row is locked,
    /// every writer of its events has committed, and this statement's fresh snapshot sees (and deletes) all of them. Deleting
    /// an unfinished job of a partition lets the next one run: its queue is woken.
    /// </summary>
    public const string Delete = """
        WITH d AS (
            DELETE FROM {s}.jobs WHERE id = @id AND state <> 2 RETURNING id, queue, state, partition_key
        ), ev AS (
            DELETE FROM {s}.job_events e USING d WHERE e.job_id = d.id
        ), woken AS (
            SELECT pg_notify(@channel, queue) FROM d WHERE partition_key IS NOT NULL AND state < 3
        )
        SELECT queue, (SELECT count(*) FROM woken) FROM d
        """;

    /// <summary>
    /// Retention: the oldest finished jobs of a queue (index jobs_finished) and their events. SKIP LOCKED, so a job that a
    /// manual retry holds is left for the next sweep; the lock re-checks its state, so a retried job is never deleted.
    /// </summary>
    public const string DeleteFinished = """
        WITH old AS (
            SELECT id FROM {s}.jobs
            WHERE queue = @queue AND state >= 3 AND finished_at < @before
            ORDER BY finished_at LIMIT @limit
            FOR UPDATE SKIP LOCKED
        ), d AS (
            DELETE FROM {s}.jobs j USING old WHERE j.id = old.id AND j.state >= 3 RETURNING j.id
        ), ev AS (
            DELETE FROM {s}.job_events e USING d WHERE e.job_id = d.id
        )
        SELECT count(*) FROM d
        """;

    public static string Search(JobQuery query)
    {
        var sql = new System.Text.StringBuilder($"SELECT {Columns} FROM {{s}}.jobs WHERE id < @before");
        if (query.Queue is not null) sql.Append(" AND queue = @queue");
        if (query.State is not null) sql.Append(" AND state = @state");
        if (query.Kind is not null) sql.Append(" AND kind = @kind");
        if (query.Tag is not null) sql.Append(" AND @tag = ANY(tags)");
        if (query.Text is not null) sql.Append(" AND strpos(payload::text, @text) > 0");
        sql.Append(" ORDER BY id DESC LIMIT @limit");
        return sql.ToString();
    }
}

internal static class EventsSql
{
    public const string InsertMany = """
        INSERT INTO {s}.job_events (job_id, at, type, state, attempt, message)
        SELECT * FROM unnest(@ids::bigint[], @ats::timestamptz[], @types::text[], @states::smallint[], @attempts::int[], @messages::text[])
        """;

    public const string ByJob = "SELECT at, type, state, attempt, message FROM {s}.job_events WHERE job_id = @id ORDER BY id";

    public const string Retried = """
        INSERT INTO {s}.job_events (job_id, at, type, state, attempt, message) VALUES (@id, @now, 'retried', 1, 0, @message)
        """;
}

internal static class QueuesSql
{
    public const string List = """
        SELECT q.name, q.paused, c.state, coalesce(sum(c.n), 0)::bigint, q.max_running, q.rate_per_second, q.retention_ms,
               q.push, q.destinations::text
        FROM {s}.queues q LEFT JOIN {s}.queue_counts c ON c.queue = q.name
        WHERE @name::text IS NULL OR q.name = @name
        GROUP BY q.name, q.paused, c.state, q.max_running, q.rate_per_second, q.retention_ms, q.push, q.destinations::text
        """;

    /// <summary>Sets the limits and retention; like the SQLite store, new settings start with a full rate bucket.</summary>
    public const string Configure = """
        INSERT INTO {s}.queues (name, created_at, max_running, rate_per_second, retention_ms, push, destinations)
        VALUES (@name, @now, @max_running, @rate_per_second, @retention_ms, @push, @destinations::json)
        ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running, rate_per_second = excluded.rate_per_second,
            retention_ms = excluded.retention_ms, push = excluded.push, destinations = excluded.destinations, tokens = NULL, tokens_at = NULL
        """;

    public const string SetPaused = """
        INSERT INTO {s}.queues (name, paused, created_at) VALUES (@name, @paused, @now)
        ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
        """;
}

internal static class SchedulesSql
{
    private const string Columns =
        "name, cron, time_zone, queue, kind, payload::text, priority, max_attempts, tags, paused, created_at, updated_at, last_fired_for";

    /// <summary>Creates or replaces the definition; a replaced schedule keeps its created_at and last_fired_for.</summary>
    public const string Upsert = $$"""
        INSERT INTO {s}.schedules AS x (name, cron, time_zone, queue, kind, payload, priority, max_attempts, tags, paused, created_at, updated_at)
        VALUES (@name, @cron, @time_zone, @queue, @kind, @payload::json, @priority, @max_attempts, @tags, @paused, @now, @now)
        ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, time_zone = excluded.time_zone, queue = excluded.queue, kind = excluded.kind,
            payload = excluded.payload, priority = excluded.priority, max_attempts = excluded.max_attempts, tags = excluded.tags,
            paused = excluded.paused, updated_at = excluded.updated_at
        RETURNING {{Columns}}
        """;

    /// <summary>Byte order (like SQLite's), whatever the database's collation.</summary>
    public const string List = $"SELECT {Columns} FROM {{s}}.schedules ORDER BY name COLLATE \"C\"";

    public const string Delete = "DELETE FROM {s}.schedules WHERE name = @name";

    /// <summary>Never moves back (greatest ignores the null of a schedule that never fired).</summary>
    public const string RecordFired = "UPDATE {s}.schedules SET last_fired_for = greatest(last_fired_for, @at) WHERE name = @name";
}
