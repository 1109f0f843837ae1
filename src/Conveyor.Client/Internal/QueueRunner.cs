using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Conveyor.Client.Internal;

/// <summary>
/// Works one queue: a lease loop (batches, long poll), <see cref="ConveyorQueueOptions.Concurrency"/> consumer loops
/// that run handlers, and a heartbeat loop. Shutdown: stop leasing, release what has not started, give running handlers
/// the grace period, then cancel them and release their jobs.
/// </summary>
/// <remarks>
/// Slots: <see cref="_slots"/> counts jobs this queue may still lease (Concurrency + Prefetch). The lease loop takes
/// slots before asking, gives back what the answer did not fill, and a consumer gives one back when a job's handler
/// is done with it. So at most Concurrency + Prefetch jobs are leased and not yet handled, and the ready channel
/// never holds more than that.
/// </remarks>
internal sealed class QueueRunner
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LastRetry = TimeSpan.FromSeconds(10);

    private readonly ConveyorClient _client;
    private readonly ConveyorQueueOptions _queue;
    private readonly ConveyorWorkerOptions _worker;
    private readonly Dictionary<string, HandlerRegistration> _byKind;
    private readonly HandlerRegistration? _fallback;
    private readonly IServiceScopeFactory _scopes;
    private readonly AckBatcher _acks;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _slots;
    private readonly long _leaseTicks;
    private readonly int _leaseMs;

    // Unbounded on purpose: the slots above bound it (see the class remarks).
    private readonly Channel<HeldJob> _ready = Channel.CreateUnbounded<HeldJob>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly ConcurrentDictionary<long, HeldJob> _held = new();
    private readonly CancellationTokenSource _hardStop = new();
    private int _running;

    public QueueRunner(
        ConveyorClient client,
        ConveyorQueueOptions queue,
        ConveyorWorkerOptions worker,
        IReadOnlyList<HandlerRegistration> handlers,
        IServiceScopeFactory scopes,
        AckBatcher acks,
        ILogger logger,
        TimeProvider time)
    {
        _client = client;
        _queue = queue;
        _worker = worker;
        _scopes = scopes;
        _acks = acks;
        _logger = logger;
        _time = time;
        _byKind = new Dictionary<string, HandlerRegistration>(StringComparer.Ordinal);
        foreach (var handler in handlers)
        {
            if (handler.Kind is null)
            {
                _fallback = _fallback is null
                    ? handler
                    : throw new InvalidOperationException(
                        $"Queue '{queue.Name}' has two handlers for every kind ({_fallback.Description} and {handler.Description}); "
                        + "give one of them a kind.");
            }
            else if (!_byKind.TryAdd(handler.Kind, handler))
            {
                throw new InvalidOperationException(
                    $"Queue '{queue.Name}' has two handlers for kind '{handler.Kind}' ({_byKind[handler.Kind].Description} and "
                    + $"{handler.Description}); keep one.");
            }
        }

        _slots = new SemaphoreSlim(queue.Concurrency + queue.Prefetch);
        _leaseMs = (int)queue.LeaseDuration.TotalMilliseconds;
        _leaseTicks = (long)(queue.LeaseDuration.TotalSeconds * time.TimestampFrequency);
    }

    public string Name => _queue.Name;

    public int Running => Volatile.Read(ref _running);

    /// <summary>Runs until <paramref name="stopping"/> fires and every job this queue leased has been handed on.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        var consumers = new Task[_queue.Concurrency];
        for (var i = 0; i < consumers.Length; i++)
        {
            consumers[i] = ConsumeAsync(stopping);
        }

        // The grace period starts when stopping does; past it, running handlers are cancelled and their jobs released.
        using var grace = stopping.Register(() =>
        {
            try
            {
                _hardStop.CancelAfter(_worker.ShutdownGracePeriod);
            }
            catch (ObjectDisposedException)
            {
            }
        });

        try
        {
            await LeaseLoopAsync(stopping).ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            WorkerLog.LoopCrashed(_logger, exception, _queue.Name);
        }
        finally
        {
            _ready.Writer.TryComplete();
        }

        await Task.WhenAll(consumers).ConfigureAwait(false);
    }

    /// <summary>The host's deadline passed: cancel every running handler now.</summary>
    public void HardStop()
    {
        try
        {
            _hardStop.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task LeaseLoopAsync(CancellationToken stopping)
    {
        var most = Math.Min(_queue.Concurrency + _queue.Prefetch, 1000);
        var waitMs = (int)_worker.PollWait.TotalMilliseconds;
        var retry = FirstRetry;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await _slots.WaitAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            var want = 1;
            while (want < most && _slots.Wait(0, CancellationToken.None))
            {
                want++;
            }

            IReadOnlyList<JobInfo> jobs;
            var sentAt = _time.GetTimestamp();
            try
            {
                // Never cancelled once sent: jobs leased by an answer nobody reads stay running, unseen, until their
                // leases expire. Shutdown waits (at most PollWait) for the answer and releases what it brings.
                jobs = await _client.LeaseAsync(_queue.Name, want, _leaseMs, waitMs, _worker.WorkerName, CancellationToken.None)
                    .ConfigureAwait(false);
                retry = FirstRetry;
            }
            catch (ConveyorException exception)
            {
                _slots.Release(want);
                WorkerLog.LeaseFailed(_logger, exception, _queue.Name, retry);
                try
                {
                    await Task.Delay(retry, _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, LastRetry.Ticks));
                continue;
            }

            if (jobs.Count < want)
            {
                _slots.Release(want - jobs.Count);
            }

            foreach (var job in jobs)
            {
                var held = new HeldJob(job, sentAt + _leaseTicks);
                _held[job.Id] = held;
                if (stopping.IsCancellationRequested)
                {
                    // Leased while stopping: hand it straight back, untouched.
                    Release(held);
                    _slots.Release();
                }
                else
                {
                    _ready.Writer.TryWrite(held);
                }
            }
        }
    }

    private async Task ConsumeAsync(CancellationToken stopping)
    {
        await foreach (var held in _ready.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            try
            {
                if (stopping.IsCancellationRequested)
                {
                    // Leased but not started: release, never fail, so the attempt does not count.
                    Release(held);
                }
                else
                {
                    Interlocked.Increment(ref _running);
                    try
                    {
                        await RunJobAsync(held).ConfigureAwait(false);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _running);
                    }
                }
            }
            catch (Exception exception)
            {
                // Panic safety: nothing about one job may stop this loop.
                WorkerLog.LoopCrashed(_logger, exception, _queue.Name);
            }
            finally
            {
                _slots.Release();
            }
        }
    }

    private async Task RunJobAsync(HeldJob held)
    {
        var job = held.Job;
        var handler = _byKind.GetValueOrDefault(job.Kind) ?? _fallback;
        if (handler is null)
        {
            Fail(held, $"no handler for kind '{job.Kind}' in queue '{job.Queue}' on worker {_worker.WorkerName}; register one with AddHandler", null);
            return;
        }

        if (held.LeaseLost.IsCancellationRequested)
        {
            return;
        }

        using var timeout = _queue.Timeout == Timeout.InfiniteTimeSpan
            ? new CancellationTokenSource()
            : new CancellationTokenSource(_queue.Timeout, _time);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, held.LeaseLost.Token, _hardStop.Token);
        var givenUp = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = cancel.Token.UnsafeRegister(static state => ((TaskCompletionSource)state!).TrySetResult(), givenUp);

        // On the thread pool, so a handler that blocks before its first await cannot stall this consumer.
        var work = Task.Run(() => InvokeAsync(handler, job, cancel.Token));
        var first = await Task.WhenAny(work, givenUp.Task).ConfigureAwait(false);
        if (first != work)
        {
            // Cancelled from outside and the handler has not returned: report now, let it finish (or not) on its own.
            ObserveAbandoned(work, job.Id);
            Interrupted(held, timeout.IsCancellationRequested);
            return;
        }

        if (work.IsCompletedSuccessfully)
        {
            Complete(held, work.Result);
            return;
        }

        var exception = work.Exception?.InnerException ?? work.Exception ?? (Exception)new TaskCanceledException(work);
        if (exception is OperationCanceledException && cancel.IsCancellationRequested)
        {
            Interrupted(held, timeout.IsCancellationRequested);
            return;
        }

        switch (exception)
        {
            case JobSnoozeException snooze:
                Fail(held, snooze.Message, stack: null, retryInMs: (long)snooze.Delay.TotalMilliseconds);
                break;
            case JobFailedPermanentlyException permanent:
                Fail(held, Message(permanent.Message, permanent), permanent.ToString(), dead: true);
                break;
            default:
                Fail(held, Message(exception.Message, exception), exception.ToString());
                break;
        }
    }

    /// <summary>The server requires a non-empty error; an exception without a message still says what it was.</summary>
    private static string Message(string message, Exception exception) =>
        string.IsNullOrWhiteSpace(message) ? exception.GetType().FullName ?? "the handler failed" : message;

    private async Task<JsonElement?> InvokeAsync(HandlerRegistration handler, JobInfo job, CancellationToken cancellationToken)
    {
        using var activity = Telemetry.StartJob(job);
        var scope = _scopes.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            var context = new JobContext(job, scope.ServiceProvider, cancellationToken);
            var task = handler.InvokeAsync(scope.ServiceProvider, job, _client.SerializerOptions, context, cancellationToken)
                ?? throw new InvalidOperationException($"the handler {handler.Description} returned a null Task");
            return await task.ConfigureAwait(false);
        }
    }

    /// <summary>The job's token fired before its handler returned: timeout, lost lease, or the end of the grace period.</summary>
    private void Interrupted(HeldJob held, bool timedOut)
    {
        if (held.LeaseLost.IsCancellationRequested)
        {
            // The server gave the job away (or it was cancelled): there is nothing we may report.
            _held.TryRemove(held.Id, out _);
            held.TrySettle();
        }
        else if (timedOut)
        {
            WorkerLog.JobTimedOut(_logger, held.Id, _queue.Name, _queue.Timeout);
            Fail(held, $"timed out after {_queue.Timeout} (queue '{_queue.Name}' Timeout); the handler's CancellationToken was cancelled", null);
        }
        else
        {
            Release(held);
        }
    }

    private void Complete(HeldJob held, JsonElement? result)
    {
        if (held.TrySettle())
        {
            _acks.Post(new PendingAck(AckKind.Complete, held, Done, Result: result));
        }
    }

    private void Fail(HeldJob held, string error, string? stack, long? retryInMs = null, bool dead = false)
    {
        if (held.TrySettle())
        {
            WorkerLog.JobFailed(_logger, held.Id, held.Job.Kind, _queue.Name, held.Job.Attempt, error);
            _acks.Post(new PendingAck(AckKind.Fail, held, Done, Error: error, Stack: stack, RetryInMs: retryInMs, Dead: dead));
        }
    }

    private void Release(HeldJob held)
    {
        if (held.TrySettle())
        {
            WorkerLog.JobReleased(_logger, held.Id, _queue.Name);
            _acks.Post(new PendingAck(AckKind.Release, held, Done));
        }
    }

    private void Done(PendingAck ack, int? status, string? detail) => _held.TryRemove(ack.Held.Id, out _);

    private void ObserveAbandoned(Task work, long jobId) =>
        work.ContinueWith(
            static (task, state) =>
            {
                var (logger, id) = ((ILogger, long))state!;
                if (task.Exception?.InnerException is { } exception and not OperationCanceledException)
                {
                    WorkerLog.AbandonedHandlerFailed(logger, exception, id);
                }
            },
            (_logger, jobId),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    /// <summary>Heartbeats every held job with half its lease or less left, until <paramref name="stop"/>.</summary>
    public async Task HeartbeatLoopAsync(CancellationToken stop)
    {
        var period = TimeSpan.FromTicks(Math.Max(_queue.LeaseDuration.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks));
        using var timer = new PeriodicTimer(period, _time);
        var beats = new List<Task>();
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var now = _time.GetTimestamp();
                foreach (var held in _held.Values)
                {
                    if (!held.HeartbeatInFlight && held.LeaseExpiresAt - now <= _leaseTicks / 2)
                    {
                        held.HeartbeatInFlight = true;
                        beats.Add(BeatAsync(held, stop));
                    }
                }

                if (beats.Count > 0)
                {
                    await Task.WhenAll(beats).ConfigureAwait(false);
                    beats.Clear();
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private async Task BeatAsync(HeldJob held, CancellationToken stop)
    {
        var sentAt = _time.GetTimestamp();
        try
        {
            await _client.HeartbeatAsync(held.Id, held.Token, _leaseMs, progress: null, stop).ConfigureAwait(false);
            held.LeaseExpiresAt = sentAt + _leaseTicks;
        }
        catch (ConveyorException exception) when (exception is JobConflictException or JobNotFoundException)
        {
            // Refused: the lease is gone (expired and re-leased, or the job was cancelled). A settled job's outcome is
            // on its way and may be what ended the lease, so that is no loss.
            _held.TryRemove(held.Id, out _);
            if (!held.IsSettled)
            {
                WorkerLog.LeaseLost(_logger, held.Id, _queue.Name, exception.Message);
                await held.LeaseLost.CancelAsync().ConfigureAwait(false);
            }
        }
        catch (ConveyorException exception)
        {
            WorkerLog.HeartbeatFailed(_logger, exception, held.Id);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            held.HeartbeatInFlight = false;
        }
    }
}
