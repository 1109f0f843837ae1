using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Win32.SafeHandles;
using Npgsql;
using NpgsqlTypes;

namespace Conveyor.Bench.HttpFloor;

/// <summary>
/// The least a durable job queue over HTTP can do, to run the issue-8 workloads against: the enqueue, batch, lease and
/// ack routes of the real API, jobs held in memory, and every enqueue and ack appended to a durable log (group commit:
/// a file flushed with fdatasync, or a PostgreSQL table) before its answer. A lease writes nothing, as in Conveyor's
/// SQLite store.
/// No SQL or index on the jobs, no validation beyond what the answers need, no recovery: what it reaches is the ceiling this
/// machine's loopback HTTP, client and disk flushes put on W1/W2/W3, not a queue to use.
/// </summary>
internal sealed class DurableFloor(FloorLog log)
{
    private readonly Dictionary<string, FloorQueue> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<long, FloorJob> _running = [];
    private long _nextId;

    public void Map(WebApplication app)
    {
        app.MapPost("/v1/queues/{queue}/jobs", (string queue, HttpContext context) => EnqueueAsync(queue, context, batch: false));
        app.MapPost("/v1/queues/{queue}/jobs/batch", (string queue, HttpContext context) => EnqueueAsync(queue, context, batch: true));
        app.MapPost("/v1/queues/{queue}/lease", LeaseAsync);
        app.MapPost("/v1/jobs/ack", AckAsync);
    }

    private FloorQueue Queue(string name)
    {
        lock (_queues)
        {
            if (!_queues.TryGetValue(name, out var queue)) _queues[name] = queue = new FloorQueue();
            return queue;
        }
    }

    private static async Task<byte[]> ReadBodyAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>Each job's "payload" value, as raw JSON: the body is one job object, or an array of them.</summary>
    private static List<byte[]> Payloads(byte[] body, bool batch)
    {
        var payloads = new List<byte[]>();
        var reader = new Utf8JsonReader(body);
        var jobDepth = batch ? 1 : 0;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == jobDepth + 1 && reader.ValueTextEquals("payload"u8))
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                payloads.Add(body[start..(int)reader.BytesConsumed]);
            }
        }
        return payloads;
    }

    private async Task EnqueueAsync(string queue, HttpContext context, bool batch)
    {
        var body = await ReadBodyAsync(context);
        var payloads = Payloads(body, batch);
        var first = Interlocked.Add(ref _nextId, payloads.Count) - payloads.Count + 1;
        await log.AppendAsync(body);
        var created = DateTimeOffset.UtcNow;
        var jobs = new FloorJob[payloads.Count];
        for (var i = 0; i < jobs.Length; i++) jobs[i] = new FloorJob(first + i, queue, payloads[i], created);
        Queue(queue).Add(jobs);

        context.Response.StatusCode = batch ? 200 : 201;
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.BodyWriter);
        if (batch)
        {
            w.WriteStartObject();
            w.WriteNumber("count"u8, jobs.Length);
            w.WriteNumber("first_id"u8, first);
            w.WriteEndObject();
        }
        else
        {
            WriteJob(w, jobs[0], token: null);
        }
    }

    private async Task LeaseAsync(string queue, HttpContext context)
    {
        int max = 1, waitMs = 0;
        var reader = new Utf8JsonReader(await ReadBodyAsync(context));
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName) continue;
            var isMax = reader.ValueTextEquals("max"u8);
            var isWait = reader.ValueTextEquals("wait_ms"u8);
            reader.Read();
            if (isMax) max = reader.GetInt32();
            if (isWait) waitMs = reader.GetInt32();
        }
        var jobs = await Queue(queue).TakeAsync(max, TimeSpan.FromMilliseconds(waitMs), context.RequestAborted);
        if (jobs.Count == 0)
        {
            context.Response.StatusCode = 204;
            return;
        }
        lock (_running)
        {
            foreach (var job in jobs) _running[job.Id] = job;
        }
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.BodyWriter);
        w.WriteStartArray();
        foreach (var job in jobs) WriteJob(w, job, job.Token);
        w.WriteEndArray();
    }

    private async Task AckAsync(HttpContext context)
    {
        var body = await ReadBodyAsync(context);
        var acks = new List<(long Id, string? Token)>();
        var reader = new Utf8JsonReader(body);
        long id = 0;
        string? token = null;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 2)
            {
                acks.Add((id, token));
                token = null;
            }
            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 3) continue;
            var isId = reader.ValueTextEquals("id"u8);
            var isToken = reader.ValueTextEquals("lease_token"u8);
            reader.Read();
            if (isId) id = reader.GetInt64();
            if (isToken) token = reader.GetString();
        }
        await log.AppendAsync(body);
        var statuses = new int[acks.Count];
        lock (_running)
        {
            for (var i = 0; i < acks.Count; i++)
            {
                var found = _running.TryGetValue(acks[i].Id, out var job) && job.Token == acks[i].Token;
                if (found) _running.Remove(acks[i].Id);
                statuses[i] = found ? 200 : 409;
            }
        }
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.BodyWriter);
        w.WriteStartObject();
        w.WriteStartArray("results"u8);
        for (var i = 0; i < acks.Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("id"u8, acks[i].Id);
            w.WriteNumber("status"u8, statuses[i]);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteJob(Utf8JsonWriter w, FloorJob job, string? token)
    {
        w.WriteStartObject();
        w.WriteNumber("id"u8, job.Id);
        w.WriteString("queue"u8, job.Queue);
        w.WriteString("state"u8, token is null ? "available"u8 : "running"u8);
        w.WriteString("created_at"u8, job.Created);
        w.WritePropertyName("payload"u8);
        w.WriteRawValue(job.Payload, skipInputValidation: true);
        if (token is not null)
        {
            w.WriteStartObject("lease"u8);
            w.WriteString("token"u8, token);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}

internal sealed class FloorJob(long id, string queue, byte[] payload, DateTimeOffset created)
{
    public long Id { get; } = id;
    public string Queue { get; } = queue;
    public byte[] Payload { get; } = payload;
    public DateTimeOffset Created { get; } = created;
    public string? Token { get; set; }
}

/// <summary>A queue's ready jobs in order, and the leases long-polling for them.</summary>
internal sealed class FloorQueue
{
    private readonly Queue<FloorJob> _ready = new();
    private readonly List<TaskCompletionSource> _waiting = [];
    private long _leases;

    public void Add(FloorJob[] jobs)
    {
        lock (_ready)
        {
            foreach (var job in jobs) _ready.Enqueue(job);
            foreach (var waiter in _waiting) waiter.TrySetResult();
            _waiting.Clear();
        }
    }

    public async Task<List<FloorJob>> TakeAsync(int max, TimeSpan wait, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + wait;
        var taken = new List<FloorJob>();
        while (true)
        {
            TaskCompletionSource waiter;
            lock (_ready)
            {
                if (_ready.Count > 0)
                {
                    var token = $"t{++_leases}-";
                    while (taken.Count < max && _ready.TryDequeue(out var job))
                    {
                        job.Token = token + job.Id;
                        taken.Add(job);
                    }
                    return taken;
                }
                waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiting.Add(waiter);
            }
            var left = deadline - DateTime.UtcNow;
            try
            {
                if (left <= TimeSpan.Zero) throw new TimeoutException();
                await waiter.Task.WaitAsync(left, cancellationToken);
            }
            catch (TimeoutException)
            {
                lock (_ready) _waiting.Remove(waiter);
                return taken;
            }
        }
    }
}

/// <summary>
/// An append-only log with group commit: one loop takes every record waiting when it wakes, makes them durable together
/// (<see cref="WriteGroup"/>), then answers them all, as Conveyor's stores fold concurrent writes into one commit.
/// </summary>
internal abstract class FloorLog : IDisposable
{
    private readonly Channel<(byte[] Record, TaskCompletionSource Done)> _pending =
        Channel.CreateUnbounded<(byte[], TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private Task _loop = Task.CompletedTask;

    protected void Start() =>
        _loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public Task AppendAsync(byte[] record)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_pending.Writer.TryWrite((record, done))) throw new ObjectDisposedException(nameof(FloorLog));
        return done.Task;
    }

    /// <summary>Returns once every record of the group is durable.</summary>
    protected abstract void WriteGroup(List<byte[]> records);

    // On a thread of its own, blocking in the wait and the flush, as Conveyor's SQLite writer: resuming on the thread
    // pool after each wait costs a hand-off per group (docs/benchmarks.md).
    private void Loop()
    {
        var group = new List<(byte[] Record, TaskCompletionSource Done)>();
        var records = new List<byte[]>();
        while (WaitForRecords())
        {
            group.Clear();
            records.Clear();
            while (_pending.Reader.TryRead(out var item))
            {
                group.Add(item);
                records.Add(item.Record);
            }
            try
            {
                WriteGroup(records);
                foreach (var item in group) item.Done.TrySetResult();
            }
            catch (Exception error)
            {
                foreach (var item in group) item.Done.TrySetException(error);
            }
        }
    }

    private bool WaitForRecords()
    {
        var more = _pending.Reader.WaitToReadAsync();
        return more.IsCompleted ? more.Result : more.AsTask().GetAwaiter().GetResult();
    }

    public virtual void Dispose()
    {
        _pending.Writer.TryComplete();
        _loop.Wait();
    }
}

/// <summary>
/// The log as a file flushed with fdatasync, as SQLite flushes its WAL. The file is allocated and zeroed up front and
/// written as a ring, so a flush carries the data only, as an SQLite WAL being reused does.
/// </summary>
internal sealed partial class FileFloorLog : FloorLog
{
    private const long Size = 64L << 20;
    private readonly SafeFileHandle _file;
    private readonly MemoryStream _buffer = new();
    private long _offset;

    public FileFloorLog(string path)
    {
        _file = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite);
        var zeros = new byte[1 << 20];
        for (long at = 0; at < Size; at += zeros.Length) RandomAccess.Write(_file, zeros, at);
        Flush();
        Start();
    }

    protected override void WriteGroup(List<byte[]> records)
    {
        _buffer.SetLength(0);
        Span<byte> length = stackalloc byte[sizeof(int)];
        foreach (var record in records)
        {
            BinaryPrimitives.WriteInt32LittleEndian(length, record.Length);
            _buffer.Write(length);
            _buffer.Write(record);
        }
        var bytes = _buffer.GetBuffer().AsSpan(0, (int)_buffer.Length);
        if (_offset + bytes.Length > Size) _offset = 0;
        RandomAccess.Write(_file, bytes, _offset);
        _offset += bytes.Length;
        Flush();
    }

    private void Flush()
    {
        if (fdatasync((int)_file.DangerousGetHandle()) != 0) throw new IOException($"fdatasync failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    public override void Dispose()
    {
        base.Dispose();
        _file.Dispose();
    }
}

/// <summary>
/// The log as rows of a PostgreSQL table, one group per transaction with the server's durable commit
/// (synchronous_commit on): what the PostgreSQL store's commits cannot go below.
/// </summary>
internal sealed class PostgresFloorLog : FloorLog
{
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlCommand _insert;

    public PostgresFloorLog(string connectionString)
    {
        _connection = new NpgsqlConnection(connectionString);
        _connection.Open();
        using (var setup = new NpgsqlCommand(
            "DROP TABLE IF EXISTS conveyor_http_floor_log; CREATE TABLE conveyor_http_floor_log (id bigserial PRIMARY KEY, record bytea NOT NULL)",
            _connection))
        {
            setup.ExecuteNonQuery();
        }
        _insert = new NpgsqlCommand("INSERT INTO conveyor_http_floor_log (record) SELECT unnest(@records)", _connection);
        _insert.Parameters.Add(new NpgsqlParameter<byte[][]>("records", NpgsqlDbType.Array | NpgsqlDbType.Bytea));
        _insert.Prepare();
        Start();
    }

    protected override void WriteGroup(List<byte[]> records)
    {
        ((NpgsqlParameter<byte[][]>)_insert.Parameters[0]).TypedValue = [.. records];
        _insert.ExecuteNonQuery();
    }

    public override void Dispose()
    {
        base.Dispose();
        _insert.Dispose();
        _connection.Dispose();
    }
}
