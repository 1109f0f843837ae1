using Conveyor.Client.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Conveyor.Client;

/// <summary>
/// Works the chunks of one queue's submissions: <see cref="ChunkWorkerOptions.Concurrency"/> loops, each reserving a
/// chunk (over the <c>/v1/consume</c> WebSocket by default, or the HTTP routes; long poll), reading its body from the object store when it comes as a reference, running the handler
/// with heartbeats, and completing the chunk with the handler's output or failing it with the exception's message.
/// Hosted by <c>services.AddConveyorChunkWorker(…)</c>, or run by hand with <see cref="RunAsync"/>.
/// </summary>
/// <remarks>
/// Stopping: no new reservations; a chunk that arrives after the stop is released at once; running handlers get the
/// grace period, then their token is cancelled and their chunks released (not failed: the attempt does not count).
/// </remarks>
public sealed class ChunkWorker
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LastRetry = TimeSpan.FromSeconds(10);

    // The server pings the consumer WebSocket this often and drops it after three silent intervals.
    private static readonly TimeSpan ConsumeHeartbeat = TimeSpan.FromSeconds(15);

    private readonly ConveyorClient _client;
    private readonly string _queue;
    private readonly Func<ChunkContext, CancellationToken, Task<ChunkOutput>> _handler;
    private readonly ChunkWorkerOptions _options;
    private readonly ILogger _logger;
    private int _running;

    /// <summary>A worker for <paramref name="queue"/> that runs <paramref name="handler"/> for each chunk.</summary>
    public ChunkWorker(
        ConveyorClient client,
        string queue,
        Func<ChunkContext, CancellationToken, Task<ChunkOutput>> handler,
        ChunkWorkerOptions? options = null,
        ILogger? logger = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _handler = handler ?? throw new ArgumentNullException(nameof(handler));
        _queue = queue;
        _options = options ?? new ChunkWorkerOptions();
        _options.Validate(queue);
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>A worker for <paramref name="queue"/> that runs <paramref name="handler"/> for each chunk.</summary>
    public ChunkWorker(ConveyorClient client, string queue, IChunkHandler handler, ChunkWorkerOptions? options = null, ILogger? logger = null)
        : this(client, queue, (handler ?? throw new ArgumentNullException(nameof(handler))).HandleAsync, options, logger)
    {
    }

    public string Queue => _queue;

    /// <summary>Chunks whose handler is running now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Works until <paramref name="stopping"/> fires, then stops as the class remarks say and returns.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        using var hardStop = new CancellationTokenSource();
        using var grace = stopping.Register(() =>
        {
            try
            {
                hardStop.CancelAfter(_options.ShutdownGracePeriod);
            }
            catch (ObjectDisposedException)
            {
            }
        });
        ChunkWorkerLog.Started(_logger, _queue, _options.Concurrency);
        IChunkTransport transport = _options.Transport == ChunkWorkerTransport.WebSocket
            ? new WebSocketChunkTransport(_client, ConsumeHeartbeat)
            : new HttpChunkTransport(_client);
        await using (transport.ConfigureAwait(false))
        {
            var loops = new Task[_options.Concurrency];
            for (var i = 0; i < loops.Length; i++)
            {
                loops[i] = Task.Run(() => LoopAsync(transport, stopping, hardStop.Token), CancellationToken.None);
            }

            await Task.WhenAll(loops).ConfigureAwait(false);
        }

        ChunkWorkerLog.Stopped(_logger, _queue);
    }

    private async Task LoopAsync(IChunkTransport transport, CancellationToken stopping, CancellationToken hardStop)
    {
        var reserve = ConveyorClient.ReserveBody(_queue, 1, _options.PollWait, _options.LeaseDuration, _options.Order, _options.PreferDistinct);
        var retry = FirstRetry;
        while (!stopping.IsCancellationRequested)
        {
            IReadOnlyList<ReservedChunk> chunks;
            try
            {
                // Never cancelled once sent: over HTTP, chunks reserved by an answer nobody reads would wait for their lease
                // to expire; over the WebSocket they would be released only when the connection closes, a moment after
                // this worker said it stopped. Shutdown waits (at most PollWait) and releases what the answer brings.
                chunks = await transport.ReserveAsync(reserve, CancellationToken.None).ConfigureAwait(false);
                retry = FirstRetry;
            }
            catch (Exception exception) when (exception is ConveyorException or InvalidOperationException)
            {
                ChunkWorkerLog.ReserveFailed(_logger, exception, _queue, retry);
                try
                {
                    await Task.Delay(retry, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, LastRetry.Ticks));
                continue;
            }

            foreach (var chunk in chunks)
            {
                try
                {
                    if (stopping.IsCancellationRequested)
                    {
                        await ReleaseAsync(transport, chunk).ConfigureAwait(false);
                    }
                    else
                    {
                        await WorkAsync(transport, chunk, hardStop).ConfigureAwait(false);
                    }
                }
                catch (Exception exception)
                {
                    // A bug of ours must not end the loop: the chunk runs again once its lease expires.
                    ChunkWorkerLog.LoopCrashed(_logger, exception, _queue);
                }
            }
        }
    }

    private async Task WorkAsync(IChunkTransport transport, ReservedChunk chunk, CancellationToken hardStop)
    {
        Interlocked.Increment(ref _running);
        using var leaseLost = new CancellationTokenSource();
        using var handlerToken = CancellationTokenSource.CreateLinkedTokenSource(hardStop, leaseLost.Token);
        using var heartbeatStop = new CancellationTokenSource();
        var heartbeats = HeartbeatLoopAsync(transport, chunk, leaseLost, heartbeatStop.Token);
        ChunkOutput output = default;
        Exception? failure = null;
        try
        {
            var body = await ReadBodyAsync(chunk, handlerToken.Token).ConfigureAwait(false);
            var context = new ChunkContext(chunk, body, services: null, handlerToken.Token);

            // Task.Run: a handler that throws (or blocks) before its first await is still caught here, never on our loop.
            output = await Task.Run(() => _handler(context, handlerToken.Token), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            failure = exception;
        }
        finally
        {
            await heartbeatStop.CancelAsync().ConfigureAwait(false);
            await heartbeats.ConfigureAwait(false);
            Interlocked.Decrement(ref _running);
        }

        if (leaseLost.IsCancellationRequested)
        {
            return; // logged by the heartbeat loop; the server no longer takes an outcome from us.
        }

        if (failure is OperationCanceledException && hardStop.IsCancellationRequested)
        {
            await ReleaseAsync(transport, chunk).ConfigureAwait(false);
            return;
        }

        try
        {
            var target = ConveyorClient.Target(chunk);
            if (failure is not null)
            {
                var error = string.IsNullOrWhiteSpace(failure.Message) ? failure.GetType().Name : failure.Message;
                ChunkWorkerLog.ChunkFailed(_logger, chunk.SubmissionId, chunk.Index, chunk.Attempt, error);
                await RetryTransientAsync(() => transport.SendAsync("fail", target with { Error = error }, CancellationToken.None)).ConfigureAwait(false);
            }
            else
            {
                var body = output.Bytes is { } bytes
                    ? target with { ResultBase64 = Convert.ToBase64String(bytes.Span), Operations = output.Operations }
                    : target with { Result = output.Json, Operations = output.Operations };
                await RetryTransientAsync(() => transport.SendAsync("complete", body, CancellationToken.None)).ConfigureAwait(false);
            }
        }
        catch (ChunkLeaseLostException exception)
        {
            ChunkWorkerLog.LeaseLost(_logger, chunk.SubmissionId, chunk.Index, exception.Message);
        }
        catch (ConveyorException exception)
        {
            ChunkWorkerLog.OutcomeLost(_logger, exception, chunk.SubmissionId, chunk.Index);
        }
    }

    /// <summary>The chunk's bytes: inline base64, or the object-store body behind its reference.</summary>
    private async Task<ReadOnlyMemory<byte>?> ReadBodyAsync(ReservedChunk chunk, CancellationToken cancellationToken)
    {
        if (chunk.DataBase64 is { } base64)
        {
            return Convert.FromBase64String(base64);
        }

        if (chunk.BodyRef is not { } reference)
        {
            return null;
        }

        var stream = await _client.ReadObjectAsync(reference.Key, cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
            return copy.ToArray();
        }
    }

    private async Task HeartbeatLoopAsync(IChunkTransport transport, ReservedChunk chunk, CancellationTokenSource leaseLost, CancellationToken stop)
    {
        var extend = ConveyorClient.Target(chunk) with { ExtendMs = (long)_options.LeaseDuration.TotalMilliseconds };
        try
        {
            while (true)
            {
                await Task.Delay(_options.Heartbeat, stop).ConfigureAwait(false);
                try
                {
                    await transport.SendAsync("heartbeat", extend, stop).ConfigureAwait(false);
                }
                catch (ConveyorException exception) when (exception is SubmissionNotFoundException or ChunkLeaseLostException)
                {
                    // The submission failed or was cancelled, or the lease went elsewhere: stop the handler, report nothing.
                    ChunkWorkerLog.LeaseLost(_logger, chunk.SubmissionId, chunk.Index, exception.Message);
                    await leaseLost.CancelAsync().ConfigureAwait(false);
                    return;
                }
                catch (ConveyorException exception)
                {
                    ChunkWorkerLog.HeartbeatFailed(_logger, exception, chunk.SubmissionId, chunk.Index);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReleaseAsync(IChunkTransport transport, ReservedChunk chunk)
    {
        try
        {
            await transport.SendAsync("release", ConveyorClient.Target(chunk), CancellationToken.None).ConfigureAwait(false);
            ChunkWorkerLog.Released(_logger, chunk.SubmissionId, chunk.Index);
        }
        catch (ConveyorException exception)
        {
            ChunkWorkerLog.OutcomeLost(_logger, exception, chunk.SubmissionId, chunk.Index);
        }
    }

    /// <summary>An outcome is worth a few tries: a restarting server would otherwise cost the chunk a whole lease.</summary>
    private static async Task RetryTransientAsync(Func<Task<ChunkActionResult>> send)
    {
        var pause = FirstRetry;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await send().ConfigureAwait(false);
                return;
            }
            catch (ConveyorException exception) when (exception.IsTransient && attempt < 5)
            {
                await Task.Delay(pause).ConfigureAwait(false);
                pause *= 2;
            }
        }
    }
}
