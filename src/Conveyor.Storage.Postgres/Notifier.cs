using Npgsql;

namespace Conveyor.Storage.Postgres;

/// <summary>
/// Sends the NOTIFYs for this server's inserts, for the other servers' long polls (this server's own are woken in memory at
/// once). One loop on one pooled connection held for as long as it works: the queues that got jobs while a notification was
/// in flight are folded into the next one, so a burst of small insert transactions costs a few notifying transactions, not
/// one each, and the insert writers never wait for them. Each is a transaction of its own that does not wait for the WAL
/// flush (<see cref="JobsSql.NotifyAsync"/>): a notifying commit holds PostgreSQL's global notify lock, and durable inserts
/// must not queue behind it.
/// <para>
/// Best effort, as before: a notification lost to a crash or a broken connection leaves the other servers' long polls to
/// their fallback poll. The listener of this server ignores notifications sent from <see cref="ProcessId"/>: it has woken
/// its waiters already.
/// </para>
/// </summary>
internal sealed class Notifier(NpgsqlDataSource db, string sql, string channel)
{
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _ready = new(0);
    private HashSet<string> _pending = new(StringComparer.Ordinal);
    private volatile bool _completed;
    private volatile int _processId;

    /// <summary>The backend process of the connection the notifications are sent from; 0 while there is none.</summary>
    public int ProcessId => _processId;

    public void Enqueue(IEnumerable<string> queues)
    {
        bool first;
        lock (_gate)
        {
            first = _pending.Count == 0;
            foreach (var queue in queues) _pending.Add(queue);
            first &= _pending.Count > 0;
        }
        if (first) _ready.Release();
    }

    /// <summary>Sends what is pending, then ends the loop.</summary>
    public void Complete()
    {
        _completed = true;
        _ready.Release();
    }

    public async Task RunAsync()
    {
        NpgsqlConnection? connection = null;
        try
        {
            while (true)
            {
                await _ready.WaitAsync().ConfigureAwait(false);
                HashSet<string> queues;
                lock (_gate)
                {
                    queues = _pending;
                    _pending = new HashSet<string>(StringComparer.Ordinal);
                }
                if (queues.Count > 0)
                {
                    try
                    {
                        if (connection is null)
                        {
                            connection = await db.OpenConnectionAsync().ConfigureAwait(false);
                            _processId = connection.ProcessID;
                        }
                        await using var notify = new NpgsqlCommand(sql, connection);
                        notify.Parameters.AddWithValue("channel", channel);
                        notify.Parameters.AddWithValue("queues", queues.ToArray());
                        await notify.ExecuteNonQueryAsync().ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
                    {
                        // Lost: the other servers' long polls fall back to their poll. The next batch opens a fresh connection.
                        _processId = 0;
                        if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
                        connection = null;
                    }
                }
                if (_completed)
                {
                    lock (_gate)
                    {
                        if (_pending.Count == 0) return;
                    }
                }
            }
        }
        finally
        {
            _processId = 0;
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
