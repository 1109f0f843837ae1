using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Conveyor.Amqp;

/// <summary>
/// Publishes with publisher confirms: <see cref="PublishAsync"/> returns only once RabbitMQ has confirmed the message
/// (for a persistent message to a durable queue: written to disk), and throws <see cref="AmqpException"/> otherwise
/// (nack, unroutable with <c>mandatory</c>, connection down). A message counts as delivered only when the call returns.
/// Safe to call concurrently: confirms are awaited per message, many can be outstanding at once on the one channel.
/// </summary>
/// <remarks>
/// Built on a connection it does not own, so the RPC replier, the client and later the <c>amqp</c> push destination
/// share one. A channel the broker closes (say, publishing to an exchange that does not exist) is replaced by a new one
/// on the next call; while the connection itself is down, calls fail fast with <see cref="AmqpFailure.ConnectionDown"/>
/// and the connection's automatic recovery brings the channel back.
/// </remarks>
public sealed class AmqpPublisher : IAsyncDisposable
{
    /// <summary>How long a publish waits for the broker's confirm before it counts as not confirmed.</summary>
    public static readonly TimeSpan DefaultConfirmTimeout = TimeSpan.FromSeconds(15);

    private readonly Func<IConnection?> _connection;
    private readonly TimeSpan _confirmTimeout;
    private readonly SemaphoreSlim _channelGate = new(1, 1);
    private IChannel? _channel;
    private IConnection? _channelConnection;
    private bool _disposed;

    public AmqpPublisher(IConnection connection, TimeSpan? confirmTimeout = null)
        : this(() => connection, confirmTimeout) => ArgumentNullException.ThrowIfNull(connection);

    /// <summary>Publishes on whatever connection <paramref name="connection"/> returns now (the ingest replaces a connection that never recovered).</summary>
    internal AmqpPublisher(Func<IConnection?> connection, TimeSpan? confirmTimeout = null)
    {
        _connection = connection;
        _confirmTimeout = confirmTimeout ?? DefaultConfirmTimeout;
    }

    /// <summary>A persistent JSON message with no other properties set.</summary>
    public static BasicProperties JsonProperties() => new() { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };

    /// <summary>
    /// Publishes and waits for the broker's confirm. With <paramref name="mandatory"/> (the default) a message no queue
    /// takes is returned by the broker, which fails the call with <see cref="AmqpFailure.Unroutable"/>.
    /// </summary>
    public async Task PublishAsync(
        string exchange, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body, bool mandatory = true,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(routingKey);
        ArgumentNullException.ThrowIfNull(properties);
        var channel = await ChannelAsync(cancellationToken).ConfigureAwait(false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_confirmTimeout);
        try
        {
            // With confirmation tracking on, this completes when the broker acks the message and throws on nack/return.
            await channel.BasicPublishAsync(exchange, routingKey, mandatory, properties, body, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            // No confirm in time. RabbitMQ.Client 7 can leave a publish waiting forever across a broker restart
            // (rabbitmq-dotnet-client#1930): give up on this channel, the next call opens a fresh one.
            Interlocked.CompareExchange(ref _channel, null, channel);
            _ = DisposeQuietly(channel).AsTask();
            throw AmqpErrors.ConnectionDown($"publish to '{routingKey}' (no confirm within {_confirmTimeout.TotalSeconds:0} s)", e);
        }
        catch (PublishException e) when (e.IsReturn)
        {
            throw AmqpErrors.Unroutable(exchange, routingKey, e);
        }
        catch (PublishException e)
        {
            throw AmqpErrors.NotConfirmed(exchange, routingKey, e);
        }
        catch (Exception e) when (AmqpConnections.IsConnectionLoss(e) && !cancellationToken.IsCancellationRequested)
        {
            // Not confirmed: the message may or may not have reached the broker. Callers retry (at-least-once).
            throw AmqpErrors.ConnectionDown($"publish to '{routingKey}'", e);
        }
    }

    private async ValueTask<IChannel> ChannelAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var connection = _connection();
        if (_channel is { IsOpen: true } open && ReferenceEquals(_channelConnection, connection)) return open;
        await _channelGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_channel is { IsOpen: true } again && ReferenceEquals(_channelConnection, connection)) return again;
            if (connection is not { IsOpen: true }) throw AmqpErrors.ConnectionDown("publish");

            // The old channel (if any) was closed by the broker, not by a connection loss: recovery will not revive it.
            if (_channel is { } dead) await DisposeQuietly(dead).ConfigureAwait(false);
            try
            {
                _channelConnection = connection;
                _channel = await connection.CreateChannelAsync(
                    new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
                    cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e))
            {
                throw AmqpErrors.ConnectionDown("open a publishing channel", e);
            }
            return _channel;
        }
        finally
        {
            _channelGate.Release();
        }
    }

    private static async ValueTask DisposeQuietly(IChannel channel)
    {
        try
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        if (_channel is { } channel)
        {
            try
            {
                if (channel.IsOpen) await channel.CloseAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
            await DisposeQuietly(channel).ConfigureAwait(false);
        }
        _channelGate.Dispose();
    }
}
