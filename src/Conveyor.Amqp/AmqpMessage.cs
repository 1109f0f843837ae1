using System.Text;
using System.Text.Json;
using RabbitMQ.Client;

namespace Conveyor.Amqp;

/// <summary>A message as a handler or a caller sees it. The body is a copy: it stays valid after the handler returns.</summary>
public sealed class AmqpMessage
{
    internal AmqpMessage(ReadOnlyMemory<byte> body, IReadOnlyBasicProperties properties, bool redelivered)
    {
        Body = body;
        Type = properties.Type;
        MessageId = properties.MessageId;
        CorrelationId = properties.CorrelationId;
        ReplyTo = properties.ReplyTo;
        ContentType = properties.ContentType;
        Headers = properties.Headers is { } headers ? new Dictionary<string, object?>(headers) : new Dictionary<string, object?>();
        Redelivered = redelivered;
    }

    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>The <c>type</c> property: what the message asks for.</summary>
    public string? Type { get; }
    public string? MessageId { get; }
    public string? CorrelationId { get; }
    public string? ReplyTo { get; }
    public string? ContentType { get; }

    /// <summary>Headers as RabbitMQ.Client gives them (strings arrive as UTF-8 <c>byte[]</c>; <see cref="Header"/> decodes them).</summary>
    public IReadOnlyDictionary<string, object?> Headers { get; }

    /// <summary>RabbitMQ delivered it before (the earlier attempt was not acknowledged): handlers should be idempotent.</summary>
    public bool Redelivered { get; }

    /// <summary>An RPC call: the caller waits on <see cref="ReplyTo"/> for a reply carrying <see cref="CorrelationId"/>.</summary>
    public bool IsRpc => !string.IsNullOrEmpty(ReplyTo) && !string.IsNullOrEmpty(CorrelationId);

    public string Text => Encoding.UTF8.GetString(Body.Span);

    /// <summary>A header as text, or null.</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value switch
    {
        null => null,
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture),
    } : null;

    /// <summary>The body deserialized from JSON (web defaults: camelCase, case-insensitive, unless <paramref name="options"/> says otherwise).</summary>
    public T? Json<T>(JsonSerializerOptions? options = null) => JsonSerializer.Deserialize<T>(Body.Span, options ?? AmqpJsonDefaults.Web);
}

internal static class AmqpJsonDefaults
{
    public static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);
}
