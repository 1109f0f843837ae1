using System.Security.Cryptography;
using System.Text;
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
/// Nobody to tell, nothing sent: every server's listener connection carries the name <see cref="ListenerName"/>, so
/// <c>pg_stat_activity</c> shows which other servers listen on the channel (the name is visible to every role, unlike the
/// query). The answer is trusted for <c>peerCheckInterval</c>; a server that starts listening says so at once with an
/// empty notification (<see cref="PeerJoined"/>). A server alone thus spends no transaction on notifications (W3 +12 %,
/// W2's enqueue→start p99 22–26 → 18 ms on one server: docs/benchmarks.md).
/// </para>
/// <para>
/// Best effort, as before: a notification lost to a crash, a broken connection or a server that joined a moment ago leaves
/// the other servers' long polls to their fallback poll. The listener of this server ignores notifications sent from
/// <see cref="ProcessId"/>: it has woken its waiters already.
/// </para>
/// </summary>
internal sealed class Notifier(NpgsqlDataSource db, string sql, string channel, TimeSpan peerCheckInterval, Func<int> ownListenerProcessId)
{
    private const string PeersSql =
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = @name AND pid <> @own)";
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _ready = new(0);
    private readonly string _listenerName = ListenerName(channel);
    private HashSet<string> _pending = new(StringComparer.Ordinal);
    private volatile bool _completed;
    private volatile int _processId;
    private bool _peers;
    private long _peersCheckedAt = -1; // Environment.TickCount64 of the last look or greeting; -1: none yet
    private long _sent, _skipped;

    /// <summary>The backend process of the connection the notifications are sent from; 0 while there is none.</summary>
    public int ProcessId => _processId;

    /// <summary>Notifying transactions sent, and batches not sent because no other server listened.</summary>
    public (long Sent, long Skipped) Counts => (Interlocked.Read(ref _sent), Interlocked.Read(ref _skipped));

    /// <summary>True when the last look (or a peer's greeting) found another server listening.</summary>
    public bool PeersListening
    {
        get { lock (_gate) return _peers; }
    }

    /// <summary>
    /// The application_name of a listener connection on <paramref name="channel"/>: readable when it fits PostgreSQL's 63
    /// bytes of printable ASCII (the server replaces anything else), a digest of the channel otherwise.
    /// </summary>
    public static string ListenerName(string channel)
    {
        var readable = "conveyor-listen " + channel;
        if (readable.Length <= 63 && readable.All(c => c is >= ' ' and <= '~')) return readable;
        return "conveyor-listen " + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(channel)))[..32];
    }

    /// <summary>Another server began listening (its greeting arrived): notify from now on, until a later look finds none.</summary>
    public void PeerJoined()
    {
        lock (_gate)
        {
            _peers = true;
            _peersCheckedAt = Environment.TickCount64;
        }
    }

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
                        if (await PeersListeningAsync(connection).ConfigureAwait(false))
                        {
                            await using var notify = new NpgsqlCommand(sql, connection);
                            notify.Parameters.AddWithValue("channel", channel);
                            notify.Parameters.AddWithValue("queues", queues.ToArray());
                            await notify.ExecuteNonQueryAsync().ConfigureAwait(false);
                            Interlocked.Increment(ref _sent);
                        }
                        else
                        {
                            Interlocked.Increment(ref _skipped);
                        }
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

    private async Task<bool> PeersListeningAsync(NpgsqlConnection connection)
    {
        lock (_gate)
        {
            if (Fresh()) return _peers;
        }
        await using var look = new NpgsqlCommand(PeersSql, connection);
        look.Parameters.AddWithValue("name", _listenerName);
        // Until this server's own listener is connected its pid is 0, which matches nobody: the look may then count this
        // server's own listener as a peer, and notify in vain, never the other way round.
        look.Parameters.AddWithValue("own", ownListenerProcessId());
        var found = (bool)(await look.ExecuteScalarAsync().ConfigureAwait(false))!;
        lock (_gate)
        {
            // A greeting that arrived while we looked wins: the look may have run before that server's LISTEN.
            _peers = found || (_peers && Fresh());
            _peersCheckedAt = Environment.TickCount64;
            return _peers;
        }
    }

    private bool Fresh() => _peersCheckedAt >= 0 && Environment.TickCount64 - _peersCheckedAt < peerCheckInterval.TotalMilliseconds;
}
