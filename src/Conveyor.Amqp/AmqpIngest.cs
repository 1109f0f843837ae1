using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;

namespace Conveyor.Amqp;

/// <summary>
/// Consumes RabbitMQ queues into Conveyor jobs (<c>conveyor serve --amqp … --ingest rabbit=conveyor</c>). A message is
/// acknowledged only after its job is durably committed, so a crash at any point makes RabbitMQ redeliver it
/// (at-least-once; a <c>message_id</c> becomes the idempotency key, which turns a redelivery into a replay).
/// Messages with <c>reply_to</c> and <c>correlation_id</c> are RPC calls: their job's result (or error) is published back.
/// Starting never waits for the broker: the connection is retried in the background and recovers by itself.
/// </summary>
public sealed class AmqpIngest : IHostedService, IAsyncDisposable
{
    private readonly IJobStore _store;
    private readonly AmqpIngestOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<RouteIngest> _routes = [];
    private Task? _run;
    private volatile IConnection? _connection;
    private AmqpPublisher? _publisher;
    private RpcReplier? _replier;
    private int _stopped;

    public AmqpIngest(IJobStore store, AmqpIngestOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _store = store;
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Conveyor.Amqp.Ingest");
    }

    /// <summary>Completes once every route consumes (a signal for tests and health checks).</summary>
    public Task Ready => _ready.Task;

    /// <summary>RPC jobs whose reply is still to be published.</summary>
    public int PendingReplies => _replier?.PendingCount ?? 0;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _run = RunAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            var factory = AmqpConnections.Factory(_options.Uri, "conveyor-ingest", _options.ReconnectInterval);
            _publisher = new AmqpPublisher(() => _connection);
            _replier = new RpcReplier(_store, _publisher, _logger, _options.ReconnectInterval);
            var resumed = false;
            while (true)
            {
                var connection = await AmqpConnections.ConnectAsync(factory, _logger, _options.ReconnectInterval, cancellationToken).ConfigureAwait(false);
                try
                {
                    connection.ConnectionShutdownAsync += (_, e) =>
                    {
                        if (e.Initiator != ShutdownInitiator.Application) AmqpLog.ConnectionLost(_logger, e.ReplyText);
                        return Task.CompletedTask;
                    };
                    connection.RecoverySucceededAsync += (_, _) =>
                    {
                        AmqpLog.Reconnected(_logger);
                        return Task.CompletedTask;
                    };
                    _connection = connection;
                    if (!resumed)
                    {
                        await _replier.ResumeAsync(cancellationToken).ConfigureAwait(false);
                        resumed = true;
                    }
                    foreach (var route in _options.Routes)
                    {
                        var ingest = new RouteIngest(route, connection, _store, _replier, _options, _logger);
                        lock (_routes) _routes.Add(ingest);
                        await ingest.StartAsync(cancellationToken).ConfigureAwait(false);
                    }
                    _ready.TrySetResult();

                    // Automatic recovery normally brings the connection back within seconds of the broker. When it has not
                    // after RecoveryTimeout (a stalled recovery is a known RabbitMQ.Client 7 failure), start over on a new
                    // connection. What the old one held was never acknowledged, so RabbitMQ redelivers it: nothing is lost.
                    await WatchAsync(connection, cancellationToken).ConfigureAwait(false);
                    AmqpLog.RecoveryStalled(_logger, (int)_options.RecoveryTimeout.TotalSeconds);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    // Lost the connection while starting, or the broker refused something (permissions, a queue that cannot
                    // be declared): say so and try again from scratch rather than leave the ingest silently dead.
                    AmqpLog.IngestCrashed(_logger, e, string.Join(", ", _options.Routes), 5000);
                    await Task.Delay(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                }
                RouteIngest[] stale;
                lock (_routes)
                {
                    stale = [.. _routes];
                    _routes.Clear();
                }
                foreach (var route in stale) route.Abandon();
                try
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _ready.TrySetCanceled(cancellationToken);
        }
        catch (Exception e)
        {
            _ready.TrySetException(e);
            throw;
        }
    }

    /// <summary>Returns once <paramref name="connection"/> has been down for longer than <see cref="AmqpIngestOptions.RecoveryTimeout"/>.</summary>
    private async Task WatchAsync(IConnection connection, CancellationToken cancellationToken)
    {
        var time = _options.TimeProvider;
        DateTimeOffset? downSince = null;
        using var timer = new PeriodicTimer(_options.ReconnectInterval, time);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            if (connection.IsOpen)
            {
                downSince = null;
                continue;
            }
            downSince ??= time.GetUtcNow();
            if (time.GetUtcNow() - downSince > _options.RecoveryTimeout) return;
        }
    }

    /// <summary>
    /// Stops consuming, commits and acknowledges what was already received, ends the RPC waits (resumed at the next
    /// start), and closes the connection. Whatever is not acknowledged by then is redelivered by RabbitMQ.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            try
            {
                await _run.ConfigureAwait(false);
            }
            catch (Exception) when (_ready.Task.IsFaulted) { }
        }
        RouteIngest[] routes;
        lock (_routes) routes = [.. _routes];
        await Task.WhenAll(routes.Select(r => r.StopAsync(cancellationToken))).ConfigureAwait(false);
        if (_replier is not null) await _replier.StopAsync().ConfigureAwait(false);
        if (_publisher is not null) await _publisher.DisposeAsync().ConfigureAwait(false);
        if (_connection is not null)
        {
            try
            {
                await _connection.CloseAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e) || e is OperationCanceledException) { }
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Drops the connection at once without committing or acknowledging anything in hand: what a crash does. Tests use it to
    /// show that unacknowledged messages come back.
    /// </summary>
    internal async Task AbortAsync()
    {
        Interlocked.Exchange(ref _stopped, 1);
        lock (_routes)
        {
            foreach (var route in _routes) route.Abandon();
        }
        if (_connection is not null) await _connection.DisposeAsync().ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_replier is not null) await _replier.StopAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
