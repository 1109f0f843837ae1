using System.Threading.Channels;

namespace Conveyor.Bench.HttpFloor;

/// <summary>
/// Group commit: one loop takes every item waiting when it wakes, commits them together (<see cref="CommitGroup"/>),
/// then answers them all, as Conveyor's stores fold concurrent writes into one commit.
/// </summary>
internal abstract class GroupCommitLoop<TItem, TResult> : IDisposable
{
    private readonly Channel<(TItem Item, TaskCompletionSource<TResult> Done)> _pending =
        Channel.CreateUnbounded<(TItem, TaskCompletionSource<TResult>)>(new UnboundedChannelOptions { SingleReader = true });
    private Task _loop = Task.CompletedTask;

    protected void Start() =>
        _loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public Task<TResult> SubmitAsync(TItem item)
    {
        var done = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_pending.Writer.TryWrite((item, done))) throw new ObjectDisposedException(GetType().Name);
        return done.Task;
    }

    /// <summary>Returns once every item of the group is durable: one result per item, in the items' order.</summary>
    protected abstract TResult[] CommitGroup(List<TItem> items);

    // On a thread of its own, blocking in the wait and the flush, as Conveyor's SQLite writer: resuming on the thread
    // pool after each wait costs a hand-off per group (docs/benchmarks.md).
    private void Loop()
    {
        var group = new List<(TItem Item, TaskCompletionSource<TResult> Done)>();
        var items = new List<TItem>();
        while (WaitForItems())
        {
            group.Clear();
            items.Clear();
            while (_pending.Reader.TryRead(out var pending))
            {
                group.Add(pending);
                items.Add(pending.Item);
            }
            try
            {
                var results = CommitGroup(items);
                for (var i = 0; i < group.Count; i++) group[i].Done.TrySetResult(results[i]);
            }
            catch (Exception error)
            {
                foreach (var pending in group) pending.Done.TrySetException(error);
            }
        }
    }

    private bool WaitForItems()
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
