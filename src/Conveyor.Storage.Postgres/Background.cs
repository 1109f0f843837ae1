using Npgsql;

namespace Conveyor.Storage.Postgres;

/// <summary>
/// LISTEN on the schema's channel over a dedicated connection (not pooled: a pooled one would carry the LISTEN to
/// other users). Each notification names a queue that may have work and is handed, with the notifying backend's process
/// id, to <c>notified</c> (the store wakes its local long polls). When the connection breaks (Postgres restarted) it
/// reconnects with a pause and wakes every waiter, since notifications sent meanwhile are lost.
/// Once listening it greets the other servers with an empty notification, so that they start notifying it at once
/// (see <see cref="Notifier"/>: a server that believes itself alone sends none).
/// </summary>
internal sealed class Listener(string connectionString, string channel, Wakeups wakeups, TimeSpan retryPause, Action<string, int> notified)
{
    private static readonly TimeSpan AliveCheck = TimeSpan.FromSeconds(5);
    private readonly TaskCompletionSource _firstListen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once LISTEN is in place the first time (tests that cross servers wait for it).</summary>
    public Task Listening => _firstListen.Task;

    /// <summary>The backend process of the listening connection; 0 while there is none.</summary>
    public int ProcessId => _processId;

    private volatile int _processId;

    public async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(stopping).ConfigureAwait(false);
                connection.Notification += (_, e) => notified(e.Payload, e.PID);
                await using (var listen = new NpgsqlCommand($"LISTEN \"{channel}\"", connection))
                {
                    await listen.ExecuteNonQueryAsync(stopping).ConfigureAwait(false);
                }
                _processId = connection.ProcessID;
                await using (var greet = new NpgsqlCommand("SELECT pg_notify(@channel, '')", connection))
                {
                    greet.Parameters.AddWithValue("channel", channel);
                    await greet.ExecuteNonQueryAsync(stopping).ConfigureAwait(false);
                }
                _firstListen.TrySetResult();
                wakeups.SignalAllQueues();
                while (!stopping.IsCancellationRequested)
                {
                    // WaitAsync returns false on timeout; then prove the connection is still alive (a dead peer is found here).
                    if (!await connection.WaitAsync(AliveCheck, stopping).ConfigureAwait(false))
                    {
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        await ping.ExecuteScalarAsync(stopping).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException or TimeoutException)
            {
                _processId = 0;
                // Postgres is away: long polls fall back to their slow poll until we are back.
                try { await Task.Delay(retryPause, stopping).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }
    }
}

/// <summary>
/// Leader election for maintenance: the server holding a session-level advisory lock on its own dedicated connection runs
/// the reaper and the scheduler; the others retry the lock every <see cref="PostgresStoreOptions.LeaderRetryInterval"/>.
/// When the leader dies its connection closes, Postgres releases the lock, and another server takes over within that
/// interval. Correctness never rests on there being one leader: every maintenance statement locks the rows it changes
/// (SKIP LOCKED) and re-checks their state, so a leader that has not yet noticed losing its connection does no harm.
/// </summary>
internal sealed class LeaderLoop(string connectionString, string schema, PostgresStoreOptions options, Func<CancellationToken, Task> maintain)
{
    private static readonly TimeSpan AliveCheck = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan IterationTimeout = TimeSpan.FromSeconds(30);
    private volatile bool _isLeader;

    public bool IsLeader => _isLeader;

    public async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(stopping).ConfigureAwait(false);
                await using var tryLock = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtext('conveyor.leader'), hashtext(@schema))", connection);
                tryLock.Parameters.AddWithValue("schema", schema);
                while (!stopping.IsCancellationRequested)
                {
                    if ((bool)(await tryLock.ExecuteScalarAsync(stopping).ConfigureAwait(false))!)
                    {
                        _isLeader = true;
                        await LeadAsync(connection, stopping).ConfigureAwait(false);
                    }
                    await Task.Delay(options.LeaderRetryInterval, stopping).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException or TimeoutException or StoreUnavailableException)
            {
                _isLeader = false;
                try { await Task.Delay(options.LeaderRetryInterval, stopping).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
            finally
            {
                // Closing the connection releases the lock: the next leader can start at once.
                _isLeader = false;
            }
        }
    }

    private async Task LeadAsync(NpgsqlConnection connection, CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(options.MaintenanceInterval, options.TimeProvider);
        await using var ping = new NpgsqlCommand("SELECT 1", connection);
        var lastCheck = TimeProvider.System.GetTimestamp();
        while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
        {
            if (TimeProvider.System.GetElapsedTime(lastCheck) >= AliveCheck)
            {
                // Still holding the lock means still connected: a broken connection throws here and we step down.
                await ping.ExecuteScalarAsync(stopping).ConfigureAwait(false);
                lastCheck = TimeProvider.System.GetTimestamp();
            }
            using var iteration = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            iteration.CancelAfter(IterationTimeout);
            try
            {
                await maintain(iteration.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (!stopping.IsCancellationRequested && e is StoreUnavailableException or OperationCanceledException)
            {
                // The next tick tries again; a dead leader connection is noticed by the ping above.
            }
        }
    }
}
