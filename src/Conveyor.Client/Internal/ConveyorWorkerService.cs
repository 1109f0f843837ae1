using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Conveyor.Client.Internal;

/// <summary>
/// The worker host: one <see cref="QueueRunner"/> per queue, one <see cref="AckBatcher"/> shared by all, started and
/// stopped with the application.
/// </summary>
/// <remarks>
/// Stop order: the runners stop leasing, release what has not started and wait for running handlers (the grace
/// period); then the acker sends every outcome still queued; only then do heartbeats stop, so no held job loses its
/// lease while its outcome is on the way.
/// </remarks>
internal sealed class ConveyorWorkerService : BackgroundService
{
    private readonly ConveyorClient _client;
    private readonly ConveyorWorkerOptions _options;
    private readonly IReadOnlyList<HandlerRegistration> _handlers;
    private readonly IServiceScopeFactory _scopes;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _giveUp = new();
    private List<QueueRunner> _runners = [];
    private AckBatcher? _acks;

    public ConveyorWorkerService(
        ConveyorClient client,
        IOptions<ConveyorWorkerOptions> options,
        IEnumerable<HandlerRegistration> handlers,
        IServiceScopeFactory scopes,
        ILoggerFactory? loggerFactory = null,
        TimeProvider? time = null)
    {
        _client = client;
        _options = options.Value;
        _handlers = [.. handlers];
        _scopes = scopes;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Conveyor.Client.Worker");
        _time = time ?? TimeProvider.System;
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Configuration mistakes fail the start, with a sentence saying what to change, not the first job.
        foreach (var handler in _handlers)
        {
            _options.Queue(handler.Queue);
        }

        _options.Validate();
        var withoutHandler = _options.Queues.FirstOrDefault(q => !_handlers.Any(h => h.Queue == q.Name));
        if (withoutHandler is not null)
        {
            throw new InvalidOperationException(
                $"Queue '{withoutHandler.Name}' is declared for the Conveyor worker but has no handler; "
                + "add one with AddConveyorWorker(…).AddHandler(…), or remove the queue.");
        }

        _acks = new AckBatcher(_client, _options.AckBatchSize, _logger, _time);
        _runners = [.. _options.Queues.Select(q => new QueueRunner(
            _client, q, _options, [.. _handlers.Where(h => h.Queue == q.Name)], _scopes, _acks, _logger, _time))];
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_runners.Count == 0)
        {
            return;
        }

        WorkerLog.Started(_logger, _options.WorkerName, string.Join(", ", _options.Queues.Select(q => $"'{q.Name}' ×{q.Concurrency}")));
        var acking = _acks!.RunAsync(_giveUp.Token);
        using var heartbeatStop = new CancellationTokenSource();
        var heartbeats = _runners.Select(r => r.HeartbeatLoopAsync(heartbeatStop.Token)).ToArray();
        using (stoppingToken.Register(() => WorkerLog.Stopping(_logger, _runners.Sum(r => r.Running), _options.ShutdownGracePeriod)))
        {
            await Task.WhenAll(_runners.Select(r => r.RunAsync(stoppingToken))).ConfigureAwait(false);
        }

        _acks.Complete();
        await acking.ConfigureAwait(false);
        await heartbeatStop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(heartbeats).ConfigureAwait(false);
        WorkerLog.Stopped(_logger);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // The host's own deadline: past it, cancel every handler and stop trying to reach the server.
        using var deadline = cancellationToken.Register(() =>
        {
            foreach (var runner in _runners)
            {
                runner.HardStop();
            }

            _giveUp.Cancel();
        });
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    public override void Dispose()
    {
        _giveUp.Dispose();
        base.Dispose();
    }
}
