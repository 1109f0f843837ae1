namespace Conveyor.Storage.Postgres;

/// <summary>
/// Local waiters: long-polling leases per queue, and RPC result waits per job id. Signals come from this process's own
/// writes at once, from LISTEN (other servers' writes, see <see cref="Listener"/>) and from slow fallback polls.
/// Thread-safe; every member takes the one lock.
/// <para>
/// A queue signal that says how many jobs became available wakes only as many lease waiters as can take them (in the order
/// they started waiting, by each one's <c>max</c>), not every waiter: the others would each run a lease that finds nothing.
/// A waiter that consumed a wake without covering it (its lease came back full, or the wake arrived while it was already
/// looking, or it ended before looking again) passes it on (see <c>PostgresJobStore.JobLeaseAvailableAsync</c>).
/// </para>
/// </summary>
internal sealed class Wakeups
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, List<QueueWaiter>> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<long, List<TaskCompletionSource>> _jobs = [];

    /// <summary>A long poll's registration: completed when it should look again; <see cref="Max"/> is how many jobs it takes.</summary>
    public sealed class QueueWaiter(int max) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public int Max { get; } = Math.Max(1, max);
    }

    public QueueWaiter WaitForQueue(string queue, int max) => Register(_queues, queue, new QueueWaiter(max));

    public void CancelQueueWait(string queue, QueueWaiter waiter) => Unregister(_queues, queue, waiter);

    public int QueueWaiters(string queue)
    {
        lock (_gate) return _queues.TryGetValue(queue, out var list) ? list.Count : 0;
    }

    public TaskCompletionSource WaitForFinish(long id) =>
        Register(_jobs, id, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public void CancelFinishWait(long id, TaskCompletionSource waiter) => Unregister(_jobs, id, waiter);

    private TWaiter Register<TKey, TWaiter>(Dictionary<TKey, List<TWaiter>> waiters, TKey key, TWaiter waiter) where TKey : notnull
    {
        lock (_gate)
        {
            if (!waiters.TryGetValue(key, out var list)) waiters[key] = list = [];
            list.Add(waiter);
        }
        return waiter;
    }

    private void Unregister<TKey, TWaiter>(Dictionary<TKey, List<TWaiter>> waiters, TKey key, TWaiter waiter) where TKey : notnull
    {
        lock (_gate)
        {
            if (waiters.TryGetValue(key, out var list) && list.Remove(waiter) && list.Count == 0) waiters.Remove(key);
        }
    }

    /// <summary>Every lease waiter of the queue looks again (a change whose extent is unknown, or a queue with limits).</summary>
    public void SignalQueue(string queue)
    {
        List<QueueWaiter>? waiters;
        lock (_gate)
        {
            if (!_queues.Remove(queue, out waiters)) return;
        }
        foreach (var waiter in waiters) waiter.TrySetResult();
    }

    /// <summary>
    /// About <paramref name="jobs"/> jobs became leasable in the queue: wakes the longest-waiting lease waiters until their
    /// <c>max</c> adds up to that many (at least one waiter).
    /// </summary>
    public void SignalQueue(string queue, int jobs)
    {
        QueueWaiter[] woken;
        lock (_gate)
        {
            if (!_queues.TryGetValue(queue, out var list)) return;
            var n = 0;
            var capacity = 0;
            while (n < list.Count && (n == 0 || capacity < jobs)) capacity += list[n++].Max;
            if (n == list.Count)
            {
                _queues.Remove(queue);
                woken = [.. list];
            }
            else
            {
                woken = list.GetRange(0, n).ToArray();
                list.RemoveRange(0, n);
            }
        }
        foreach (var waiter in woken) waiter.TrySetResult();
    }

    public void SignalFinished(long id)
    {
        List<TaskCompletionSource>? waiters;
        lock (_gate)
        {
            if (!_jobs.Remove(id, out waiters)) return;
        }
        foreach (var waiter in waiters) waiter.TrySetResult();
    }

    /// <summary>After a reconnect (notifications may have been missed) and at shutdown: every lease waiter looks again.</summary>
    public void SignalAllQueues()
    {
        List<QueueWaiter> all;
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
}
