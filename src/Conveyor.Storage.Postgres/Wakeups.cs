namespace Conveyor.Storage.Postgres;

/// <summary>
/// Local waiters: long-polling leases per queue, and RPC result waits per job id. Signals come from this process's own
/// writes at once, from LISTEN (other servers' writes, see <see cref="Listener"/>) and from slow fallback polls.
/// Thread-safe; every member takes the one lock.
/// </summary>
internal sealed class Wakeups
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, List<TaskCompletionSource>> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<long, List<TaskCompletionSource>> _jobs = [];

    public TaskCompletionSource WaitForQueue(string queue) => Add(_queues, queue);

    public void CancelQueueWait(string queue, TaskCompletionSource waiter) => Remove(_queues, queue, waiter);

    public TaskCompletionSource WaitForFinish(long id) => Add(_jobs, id);

    public void CancelFinishWait(long id, TaskCompletionSource waiter) => Remove(_jobs, id, waiter);

    public void SignalQueue(string queue) => Signal(_queues, queue);

    public void SignalFinished(long id) => Signal(_jobs, id);

    /// <summary>After a reconnect (notifications may have been missed) and at shutdown: every lease waiter looks again.</summary>
    public void SignalAllQueues()
    {
        List<TaskCompletionSource> all;
        lock (_gate)
        {
            all = _queues.Values.SelectMany(l => l).ToList();
            _queues.Clear();
        }
        foreach (var waiter in all) waiter.TrySetResult();
    }

    public long[] WaitedJobIds()
    {
        lock (_gate) return _jobs.Count == 0 ? [] : [.. _jobs.Keys];
    }

    private TaskCompletionSource Add<TKey>(Dictionary<TKey, List<TaskCompletionSource>> map, TKey key) where TKey : notnull
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (!map.TryGetValue(key, out var list)) map[key] = list = [];
            list.Add(waiter);
        }
        return waiter;
    }

    private void Remove<TKey>(Dictionary<TKey, List<TaskCompletionSource>> map, TKey key, TaskCompletionSource waiter) where TKey : notnull
    {
        lock (_gate)
        {
            if (map.TryGetValue(key, out var list) && list.Remove(waiter) && list.Count == 0) map.Remove(key);
        }
    }

    private void Signal<TKey>(Dictionary<TKey, List<TaskCompletionSource>> map, TKey key) where TKey : notnull
    {
        List<TaskCompletionSource>? waiters;
        lock (_gate)
        {
            if (!map.Remove(key, out waiters)) return;
        }
        foreach (var waiter in waiters) waiter.TrySetResult();
    }
}
