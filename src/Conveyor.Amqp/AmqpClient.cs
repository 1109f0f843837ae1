using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Conveyor.Amqp;

/// <summary>Settings of an <see cref="AmqpClient"/>.</summary>
public sealed class AmqpClientOptions
{
    public required Uri Uri { get; init; }

    /// <summary>How long <see cref="AmqpClient.CallAsync"/> waits for a reply unless the call says otherwise.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan ReconnectInterval { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>Properties of one message sent by <see cref="AmqpClient"/>.</summary>
public sealed class AmqpSendOptions
{
    /// <summary>The <c>type</c> property (Conveyor's ingest reads it as the job's kind).</summary>
    public string? Type { get; init; }

    /// <summary>The <c>message_id</c> (Conveyor's ingest reads it as the idempotency key). Null: none.</summary>
    public string? MessageId { get; init; }

    public byte? Priority { get; init; }

    public IDictionary<string, object?>? Headers { get; init; }

    /// <summary>For a call: how long to wait for the reply (the client's default when null).</summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary>A reply to <see cref="AmqpClient.CallAsync"/>.</summary>
public sealed class AmqpReply
{
    internal AmqpReply(ReadOnlyMemory<byte> body, IReadOnlyBasicProperties properties)
    {
        Body = body;
        CorrelationId = properties.CorrelationId ?? "";
        Headers = properties.Headers is { } headers ? new Dictionary<string, object?>(headers) : new Dictionary<string, object?>();
    }

    public ReadOnlyMemory<byte> Body { get; }
    public string CorrelationId { get; }
    public IReadOnlyDictionary<string, object?> Headers { get; }
    public string Text => System.Text.Encoding.UTF8.GetString(Body.Span);

    public T? Json<T>(JsonSerializerOptions? options = null) => JsonSerializer.Deserialize<T>(Body.Span, options ?? AmqpJsonDefaults.Web);

    internal bool IsError => Headers.TryGetValue(AmqpHeaders.Status, out var s) && s is byte[] b && b.AsSpan().SequenceEqual("error"u8);
}

/// <summary>
/// Sends work to RabbitMQ queues: <see cref="PublishAsync"/> for fire-and-forget messages (returns once the broker
/// confirmed them), <see cref="CallAsync"/> for RPC (a reply with the same correlation id on the client's own callback
/// queue, or a timeout). Works against an <see cref="AmqpWorker"/> and against Conveyor's ingest alike.
/// </summary>
/// <remarks>
/// The callback queue is exclusive to this client's connection and named by the client, so after a broker restart the
/// automatic recovery declares it again under the same name. Calls in flight while the broker restarts may lose their
/// reply (it lived in a queue that was deleted) and then time out: retry them if the handler is idempotent.
/// </remarks>
public sealed class AmqpClient : IAsyncDisposable
{
    private readonly AmqpClientOptions _options;
    private readonly IConnection _connection;
    private readonly IChannel _replies;
    private readonly AmqpPublisher _publisher;
    private readonly string _replyQueue;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<AmqpReply>> _calls = new(StringComparer.Ordinal);

    private AmqpClient(AmqpClientOptions options, IConnection connection, IChannel replies, string replyQueue)
    {
        _options = options;
        _connection = connection;
        _replies = replies;
        _replyQueue = replyQueue;
        _publisher = new AmqpPublisher(connection);
    }

    /// <summary>Connects (retrying until the broker answers or <paramref name="cancellationToken"/> ends) and opens the callback queue.</summary>
    public static async Task<AmqpClient> ConnectAsync(AmqpClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        AmqpIngestOptions.ValidateUri(options.Uri);
        var factory = AmqpConnections.Factory(options.Uri, "conveyor-amqp-client", options.ReconnectInterval);
        var connection = await AmqpConnections.ConnectAsync(factory, NullLogger.Instance, options.ReconnectInterval, cancellationToken).ConfigureAwait(false);
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var replyQueue = $"amqp-client.{Guid.NewGuid():N}";
        await channel.QueueDeclareAsync(replyQueue, durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken).ConfigureAwait(false);
        var client = new AmqpClient(options, connection, channel, replyQueue);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += client.OnReplyAsync;
        await channel.BasicConsumeAsync(replyQueue, autoAck: true, consumer, cancellationToken).ConfigureAwait(false);
        return client;
    }

    private Task OnReplyAsync(object sender, BasicDeliverEventArgs args)
    {
        // A reply nobody waits for any more (timed out) is dropped.
        if (args.BasicProperties.CorrelationId is { } id && _calls.TryRemove(id, out var call))
            call.TrySetResult(new AmqpReply(args.Body.ToArray(), args.BasicProperties));
        return Task.CompletedTask;
    }

    /// <summary>
    /// Sends <paramref name="body"/> to <paramref name="queue"/> and waits for the reply. Throws <see cref="AmqpException"/>:
    /// <see cref="AmqpFailure.Timeout"/> when none comes in time, <see cref="AmqpFailure.RemoteError"/> when the handler
    /// failed (<c>x-conveyor-status: error</c>), <see cref="AmqpFailure.Unroutable"/> when no such queue exists.
    /// </summary>
    public async Task<AmqpReply> CallAsync(string queue, ReadOnlyMemory<byte> body, AmqpSendOptions? send = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        var correlationId = Guid.NewGuid().ToString("N");
        var call = new TaskCompletionSource<AmqpReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _calls[correlationId] = call;
        var timeout = send?.Timeout ?? _options.DefaultTimeout;
        try
        {
            var properties = Properties(send);
            properties.CorrelationId = correlationId;
            properties.ReplyTo = _replyQueue;
            await _publisher.PublishAsync("", queue, properties, body, mandatory: true, cancellationToken).ConfigureAwait(false);
            var reply = await call.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            if (reply.IsError) throw AmqpErrors.Remote(queue, ErrorText(reply));
            return reply;
        }
        catch (TimeoutException)
        {
            throw AmqpErrors.Timeout(queue, correlationId, timeout);
        }
        finally
        {
            _calls.TryRemove(correlationId, out _);
        }
    }

    /// <summary>A call with a JSON request and a JSON reply (web defaults: camelCase).</summary>
    public async Task<TOut?> CallJsonAsync<TIn, TOut>(
        string queue, TIn request, AmqpSendOptions? send = null, JsonSerializerOptions? json = null, CancellationToken cancellationToken = default)
    {
        var options = json ?? AmqpJsonDefaults.Web;
        var reply = await CallAsync(queue, JsonSerializer.SerializeToUtf8Bytes(request, options), send, cancellationToken).ConfigureAwait(false);
        return reply.Json<TOut>(options);
    }

    /// <summary>
    /// Sends a persistent message to <paramref name="queue"/> (default exchange) and returns once RabbitMQ confirmed it.
    /// No reply is asked for.
    /// </summary>
    public Task PublishAsync(string queue, ReadOnlyMemory<byte> body, AmqpSendOptions? send = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        return _publisher.PublishAsync("", queue, Properties(send), body, mandatory: true, cancellationToken);
    }

    public Task PublishJsonAsync<T>(string queue, T message, AmqpSendOptions? send = null, JsonSerializerOptions? json = null, CancellationToken cancellationToken = default) =>
        PublishAsync(queue, JsonSerializer.SerializeToUtf8Bytes(message, json ?? AmqpJsonDefaults.Web), send, cancellationToken);

    private static BasicProperties Properties(AmqpSendOptions? send)
    {
        var properties = AmqpPublisher.JsonProperties();
        if (send is null) return properties;
        if (send.Type is not null) properties.Type = send.Type;
        if (send.MessageId is not null) properties.MessageId = send.MessageId;
        if (send.Priority is { } priority) properties.Priority = priority;
        if (send.Headers is not null) properties.Headers = new Dictionary<string, object?>(send.Headers);
        return properties;
    }

    private static string ErrorText(AmqpReply reply)
    {
        try
        {
            using var doc = JsonDocument.Parse(reply.Body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var error) && error.GetString() is { } text)
                return text;
        }
        catch (JsonException) { }
        return reply.Text;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var call in _calls.Values) call.TrySetCanceled();
        await _publisher.DisposeAsync().ConfigureAwait(false);
        try
        {
            if (_replies.IsOpen) await _replies.CloseAsync().ConfigureAwait(false);
            await _connection.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (AmqpConnections.IsConnectionLoss(e)) { }
        await _replies.DisposeAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
    }
}
