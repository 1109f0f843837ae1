using System.Buffers.Binary;
using System.Runtime.InteropServices;
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

    private async Task EnqueueAsync(string queue, HttpContext context, bool batch)
    {
        var body = await FloorHttp.ReadBodyAsync(context);
        var payloads = FloorHttp.Payloads(body, batch);
        var first = Interlocked.Add(ref _nextId, payloads.Count) - payloads.Count + 1;
        await log.AppendAsync(body);
        var created = DateTimeOffset.UtcNow;
        var jobs = new FloorJob[payloads.Count];
        for (var i = 0; i < jobs.Length; i++) jobs[i] = new FloorJob(first + i, queue, payloads[i], created);
        Queue(queue).Add(jobs);

        await FloorHttp.WriteEnqueuedAsync(context, batch, jobs);
    }

    private async Task LeaseAsync(string queue, HttpContext context)
    {
        var (max, wait) = FloorHttp.LeaseRequest(await FloorHttp.ReadBodyAsync(context));
        var jobs = await Queue(queue).TakeAsync(max, wait, context.RequestAborted);
        if (jobs.Count > 0)
        {
            lock (_running)
            {
                foreach (var job in jobs) _running[job.Id] = job;
            }
        }
        await FloorHttp.WriteLeasedAsync(context, jobs);
    }

    private async Task AckAsync(HttpContext context)
    {
        var body = await FloorHttp.ReadBodyAsync(context);
        var acks = FloorHttp.Acks(body);
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
        await FloorHttp.WriteAckResultsAsync(context, acks, statuses);
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

/// <summary>
/// The leases long-polling on one queue. A lease listens before it looks, so a job added between its look and its wait
/// still wakes it.
/// </summary>
internal sealed class FloorWaiters
{
    private readonly List<TaskCompletionSource> _waiting = [];

    public TaskCompletionSource Listen()
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiting) _waiting.Add(waiter);
        return waiter;
    }

    public void Forget(TaskCompletionSource waiter)
    {
        lock (_waiting) _waiting.Remove(waiter);
    }

    public void WakeAll()
    {
        lock (_waiting)
        {
            foreach (var waiter in _waiting) waiter.TrySetResult();
            _waiting.Clear();
        }
    }

    /// <summary>
    /// Looks with <paramref name="look"/> until it finds jobs or <paramref name="wait"/> has passed, sleeping between looks
    /// until woken.
    /// </summary>
    public async Task<List<FloorJob>> PollAsync(Func<Task<List<FloorJob>>> look, TimeSpan wait, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            var woken = Listen();
            var jobs = await look();
            var left = deadline - DateTime.UtcNow;
            if (jobs.Count > 0 || left <= TimeSpan.Zero)
            {
                Forget(woken);
                return jobs;
            }
            try
            {
                await woken.Task.WaitAsync(left, cancellationToken);
            }
            catch (TimeoutException)
            {
                Forget(woken);
            }
        }
    }
}

/// <summary>A queue's ready jobs in order, and the leases long-polling for them.</summary>
internal sealed class FloorQueue
{
    private readonly Queue<FloorJob> _ready = new();
    private readonly FloorWaiters _waiters = new();
    private long _leases;

    public void Add(FloorJob[] jobs)
    {
        lock (_ready)
        {
            foreach (var job in jobs) _ready.Enqueue(job);
        }
        _waiters.WakeAll();
    }

    public Task<List<FloorJob>> TakeAsync(int max, TimeSpan wait, CancellationToken cancellationToken) =>
        _waiters.PollAsync(() => Task.FromResult(Take(max)), wait, cancellationToken);

    private List<FloorJob> Take(int max)
    {
        var taken = new List<FloorJob>();
        lock (_ready)
        {
            if (_ready.Count == 0) return taken;
            var token = $"t{++_leases}-";
            while (taken.Count < max && _ready.TryDequeue(out var job))
            {
                job.Token = token + job.Id;
                taken.Add(job);
            }
        }
        return taken;
    }
}

/// <summary>An append-only log with group commit (<see cref="GroupCommitLoop{TItem, TResult}"/>).</summary>
internal abstract class FloorLog : GroupCommitLoop<byte[], bool>
{
    public Task AppendAsync(byte[] record) => SubmitAsync(record);

    protected sealed override bool[] CommitGroup(List<byte[]> records)
    {
        WriteGroup(records);
        return new bool[records.Count];
    }

    /// <summary>Returns once every record of the group is durable.</summary>
    protected abstract void WriteGroup(List<byte[]> records);
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
