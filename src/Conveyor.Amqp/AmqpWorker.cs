using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Conveyor.Amqp;

/// <summary>
/// Runs one message. Return the reply body (sent to <c>reply_to</c> for an RPC call, dropped otherwise); throw to fail:
/// an RPC call then gets an error reply, any other message is dead-lettered.
/// </summary>
public delegate Task<ReadOnlyMemory<byte>> AmqpHandler(AmqpMessage message, CancellationToken cancellationToken);

/// <summary>Settings of an <see cref="AmqpWorker"/>.</summary>
public sealed class AmqpWorkerOptions
{
    /// <summary>The broker, as <c>amqp://user:password@host:5672/vhost</c>.</summary>
    public required Uri Uri { get; init; }

    /// <summary>The service's name, e.g. <c>emailjob</c>.</summary>
    public required string Queue { get; init; }

    /// <summary>The contract version, e.g. <c>1.0.0</c>: the queue is <c>emailjob-v1.0.0</c>, so two versions can run side by side.</summary>
    public required string Version { get; init; }

    /// <summary>Handlers running at once (also the prefetch window).</summary>
    public int MaxConcurrency { get; init; } = 8;

    /// <summary>A handler still running after this is cancelled and counts as failed. Null: no limit.</summary>
    public TimeSpan? HandlerTimeout { get; init; }

    public TimeSpan ReconnectInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The queue consumed: <c>{Queue}-v{Version}</c>.</summary>
    public string QueueName => $"{Queue}-v{Version}";

    /// <summary>Where failed non-RPC messages go: a fanout exchange bound to <see cref="DeadLetterQueue"/>.</summary>
    public string DeadLetterExchange => QueueName + ".dlx";

    public string DeadLetterQueue => QueueName + ".dead";

    public void Validate()
    {
        AmqpIngestOptions.ValidateUri(Uri);
        if (string.IsNullOrWhiteSpace(Queue) || Queue.StartsWith("amq.", StringComparison.Ordinal))
            throw new ArgumentException("An AmqpWorker needs a queue name (e.g. emailjob) not starting with 'amq.'.");
        if (string.IsNullOrWhiteSpace(Version) || Version.Any(char.IsWhiteSpace))
            throw new ArgumentException($"An AmqpWorker needs a version without spaces (e.g. 1.0.0), not '{Version}'.");
        if (Encoding.UTF8.GetByteCount(DeadLetterQueue) > 255) throw new ArgumentException($"The queue name '{QueueName}' is too long (at most 250 bytes).");
        if (MaxConcurrency is < 1 or > ushort.MaxValue) throw new ArgumentException($"MaxConcurrency must be 1-{ushort.MaxValue}, not {MaxConcurrency}.");
        if (HandlerTimeout is { } t && t <= TimeSpan.Zero) throw new ArgumentException("HandlerTimeout must be positive (or null for none).");
    }
}

/// <summary>
/// A worker for services that live on RabbitMQ, without a Conveyor server: consumes <c>{queue}-v{version}</c>, runs
/// up to <see cref="AmqpWorkerOptions.MaxConcurrency"/> handlers at once, replies to <c>reply_to</c> with the same
/// <c>correlation_id</c> for RPC calls and just acknowledges other messages. A handler that throws (or times out) never
/// takes the worker down: an RPC call gets an error reply, any other message is rejected into the dead-letter queue
/// <c>{queue}-v{version}.dead</c>. A message is acknowledged only after its handler finished and its reply (if any) was
/// confirmed by the broker, so a crash or a broker restart means redelivery (at-least-once), never loss.
/// </summary>
public sealed class AmqpWorker : IHostedService, IAsyncDisposable
{
    private readonly AmqpWorkerOptions _options;
    private readonly AmqpHandler _handler;
    private readonly ILogger _logger;

    // Unbounded on purpose: the prefetch window (MaxConcurrency) bounds it.
    private readonly Channel<(IChannel Channel, ulong Tag, AmqpMessage Message)> _work =
        Channel.CreateUnbounded<(IChannel, ulong, AmqpMessage)>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly CancellationTokenSource _abandon = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IConnection? _connection;
    private IChannel? _channel;
    private AmqpPublisher? _publisher;
    private string? _consumerTag;
    private Task[] _loops = [];
    private int _stopped;

    public AmqpWorker(AmqpWorkerOptions options, AmqpHandler handler, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        options.Validate();
        _options = options;
        _handler = handler;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Conveyor.Amqp.Worker");
    }

    /// <summary>Adapts a typed handler: the body is JSON of <typeparamref name="TIn"/>, the reply JSON of <typeparamref name="TOut"/>.</summary>
    public static AmqpHandler Json<TIn, TOut>(Func<TIn, CancellationToken, Task<TOut>> handler, JsonSerializerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var json = options ?? AmqpJsonDefaults.Web;
        return async (message, cancellationToken) =>
        {
            var input = message.Json<TIn>(json)!;
            var output = await handler(input, cancellationToken).ConfigureAwait(false);
            return JsonSerializer.SerializeToUtf8Bytes(output, json);
        };
    }

    /// <summary>Completes once the worker consumes its queue.</summary>
    public Task Ready => _ready.Task;

    public string QueueName => _options.QueueName;

    /// <summary>Connects (retrying until the broker answers), declares the queues and starts consuming.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var factory = AmqpConnections.Factory(_options.Uri, $"conveyor-worker {_options.QueueName}", _options.ReconnectInterval);
            _connection = await AmqpConnections.ConnectAsync(factory, _logger, _options.ReconnectInterval, cancellationToken).ConfigureAwait(false);
            _publisher = new AmqpPublisher(_connection);
            var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.ExchangeDeclareAsync(_options.DeadLetterExchange, ExchangeType.Fanout, durable: true, autoDelete: false,
                cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueDeclareAsync(_options.DeadLetterQueue, durable: true, exclusive: false, autoDelete: false,
                cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueBindAsync(_options.DeadLetterQueue, _options.DeadLetterExchange, "", cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueDeclareAsync(_options.QueueName, durable: true, exclusive: false, autoDelete: false,
                arguments: new Dictionary<string, object?> { ["x-dead-letter-exchange"] = _options.DeadLetterExchange },
                cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.BasicQosAsync(0, (ushort)_options.MaxConcurrency, global: false, cancellationToken).ConfigureAwait(false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += OnReceivedAsync;
            _channel = channel;
            _loops = Enumerable.Range(0, _options.MaxConcurrency).Select(_ => Task.Run(RunLoopAsync, CancellationToken.None)).ToArray();
            _consumerTag = await channel.BasicConsumeAsync(_options.QueueName, autoAck: false, consumer, cancellationToken).ConfigureAwait(false);
            _ready.TrySetResult();
        }
        catch (Exception e)
        {
            _ready.TrySetException(e);
            throw;
        }
    }

    private Task OnReceivedAsync(object sender, BasicDeliverEventArgs args)
    {
        var message = new AmqpMessage(args.Body.ToArray(), args.BasicProperties, args.Redelivered);
        _work.Writer.TryWrite((((AsyncEventingBasicConsumer)sender).Channel, args.DeliveryTag, message));
        return Task.CompletedTask;
    }

    private async Task RunLoopAsync()
    {
        try
        {
            while (await _work.Reader.WaitToReadAsync(_abandon.Token).ConfigureAwait(false))
            {
                while (_work.Reader.TryRead(out var item)) await HandleAsync(item.Channel, item.Tag, item.Message).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_abandon.IsCancellationRequested) { }
    }

    private async Task HandleAsync(IChannel channel, ulong tag, AmqpMessage message)
    {
        ReadOnlyMemory<byte> result = default;
        string? error = null;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_abandon.Token))
        {
            if (_options.HandlerTimeout is { } limit) timeout.CancelAfter(limit);
            try
            {
                // Panic-safe: whatever the handler does (throws before its first await, returns null, times out) ends here.
                result = await (_handler(message, timeout.Token) ?? throw new InvalidOperationException("The handler returned no task.")).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_abandon.IsCancellationRequested)
            {
                return; // stopping hard: leave it unacknowledged, RabbitMQ redelivers it
            }
            catch (Exception e)
            {
                error = e is OperationCanceledException && timeout.IsCancellationRequested
                    ? $"The handler did not finish within {_options.HandlerTimeout!.Value.TotalSeconds:0.###} s."
                    : e.Message;
                AmqpLog.HandlerFailed(_logger, e, _options.QueueName, message.MessageId ?? message.CorrelationId ?? "(no id)", error);
            }
        }
        AmqpMetrics.Handled.Add(1, new KeyValuePair<string, object?>("outcome", error is null ? "ok" : "error"));

        if (message.IsRpc)
        {
            var properties = new BasicProperties
            {
                CorrelationId = message.CorrelationId,
                ContentType = "application/json",
                Headers = new Dictionary<string, object?> { [AmqpHeaders.Status] = error is null ? AmqpHeaders.StatusOk : AmqpHeaders.StatusError },
            };
            var body = error is null ? result : JsonSerializer.SerializeToUtf8Bytes(new ErrorReply(error), AmqpJson.Default.ErrorReply);
            try
            {
                await _publisher!.PublishAsync("", message.ReplyTo!, properties, body, mandatory: true, _abandon.Token).ConfigureAwait(false);
            }
            catch (AmqpException e) when (e.Failure == AmqpFailure.Unroutable)
            {
                // The caller's reply queue is gone: nobody waits for this answer any more. Acknowledge, do not redo the work.
                AmqpLog.SettleFailed(_logger, _options.QueueName, message.CorrelationId!, "the caller's reply queue no longer exists");
            }
            catch (AmqpException e)
            {
                // Reply not confirmed: leave the message unacknowledged; it comes back and runs again (at-least-once).
                AmqpLog.SettleFailed(_logger, _options.QueueName, message.CorrelationId!, e.Message);
                await SettleAsync(message, () => channel.BasicNackAsync(tag, multiple: false, requeue: true)).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (_abandon.IsCancellationRequested)
            {
                return;
            }
            await SettleAsync(message, () => channel.BasicAckAsync(tag, multiple: false)).ConfigureAwait(false);
            return;
        }

        // Not an RPC call: success acknowledges; failure rejects without requeue, which dead-letters it through the DLX.
        await SettleAsync(message, error is null
            ? () => channel.BasicAckAsync(tag, multiple: false)
            : () => channel.BasicNackAsync(tag, multiple: false, requeue: false)).ConfigureAwait(false);
    }

    private async Task SettleAsync(AmqpMessage message, Func<ValueTask> settle)
    {
        try
        {
            await settle().ConfigureAwait(false);
        }
        catch (Exception e) when (AmqpConnections.IsConnectionLoss(e))
        {
            AmqpLog.SettleFailed(_logger, _options.QueueName, message.MessageId ?? message.CorrelationId ?? "(no id)", e.Message);
        }
    }

    /// <summary>Stops taking messages, lets running handlers finish (until <paramref name="cancellationToken"/>), then disconnects.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        using var giveUp = cancellationToken.Register(() => _abandon.Cancel());
        if (_channel is { IsOpen: true } channel && _consumerTag is not null)
        {
            try
            {
                await channel.BasicCancelAsync(_consumerTag, noWait: false, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e) || e is OperationCanceledException) { }
        }
        _work.Writer.TryComplete();
        await Task.WhenAll(_loops).ConfigureAwait(false);
        if (_publisher is not null) await _publisher.DisposeAsync().ConfigureAwait(false);
        if (_channel is not null)
        {
            try
            {
                if (_channel.IsOpen) await _channel.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
            await _channel.DisposeAsync().ConfigureAwait(false);
        }
        if (_connection is not null)
        {
            try
            {
                await _connection.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _abandon.Dispose();
    }
}
