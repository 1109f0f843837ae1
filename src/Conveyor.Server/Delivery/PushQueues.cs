using System.Collections.Concurrent;

namespace Conveyor.Server.Delivery;

/// <summary>
/// The queues whose jobs the server delivers itself (push queues), with their settings, as this server last saw them.
/// Refreshed from the store by the dispatcher (other servers on the same PostgreSQL may add some) and updated at once
/// for changes made through this server.
/// </summary>
internal sealed class PushQueues(IJobStore store)
{
    private readonly ConcurrentDictionary<string, QueueSettings> _push = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _marking = new(1, 1);

    /// <summary>Raised once for each queue that becomes a push queue (the dispatcher starts delivering it).</summary>
    public event Action<string>? Added;

    public bool IsPush(string queue) => _push.ContainsKey(queue);

    public QueueSettings? SettingsOf(string queue) => _push.TryGetValue(queue, out var settings) ? settings : null;

    public IReadOnlyList<string> Names => [.. _push.Keys];

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var queues = await store.QueueListAsync(cancellationToken).ConfigureAwait(false);
        foreach (var queue in queues) Observe(queue.Name, queue.Settings);
    }

    /// <summary>Records a queue's current settings (after a refresh or a settings change through this server).</summary>
    public void Observe(string queue, QueueSettings settings)
    {
        if (!settings.Push)
        {
            _push.TryRemove(queue, out _);
            return;
        }
        var added = !_push.ContainsKey(queue);
        _push[queue] = settings;
        if (added) Added?.Invoke(queue);
    }

    /// <summary>
    /// Makes <paramref name="queue"/> a push queue before the first job with destinations enters it. A queue that already
    /// holds pull jobs stays as it is: returns a sentence saying why, and nothing changes.
    /// </summary>
    public async Task<string?> EnsurePushAsync(string queue, CancellationToken cancellationToken)
    {
        if (IsPush(queue)) return null;
        await _marking.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (IsPush(queue)) return null;
            var existing = (await store.QueueListAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(q => q.Name == queue);
            if (existing is { Settings.Push: false } && Unfinished(existing.Counts) > 0)
            {
                return $"Queue '{queue}' holds jobs that workers lease (a pull queue), so it cannot take jobs with destinations. " +
                       "Use another queue for push delivery, or make this one a push queue with PUT /v1/queues/{queue}/settings {\"push\": true}.";
            }
            var settings = (existing?.Settings ?? QueueSettings.None) with { Push = true };
            var info = await store.QueueConfigureAsync(queue, settings, cancellationToken).ConfigureAwait(false);
            Observe(queue, info.Settings);
            return null;
        }
        finally
        {
            _marking.Release();
        }
    }

    private static long Unfinished(StateCounts c) => c.Scheduled + c.Available + c.Running;
}
